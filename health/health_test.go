package health_test

import (
	"testing"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

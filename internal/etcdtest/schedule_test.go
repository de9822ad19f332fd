package etcdtest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

func TestSilentScheduleSilencesEachMemberInTurn(t *testing.T) {
	faults := etcdtest.SilentSchedule(10, 4, 8*time.Second)
	var members []int
	for _, f := range faults {
		assert.Equal(t, etcdtest.Silent, f.Kind)
		assert.Equal(t, 8*time.Second, f.For)
		members = append(members, f.Member)
	}
	assert.Equal(t, []int{1, 2, 0, 1}, members)
}

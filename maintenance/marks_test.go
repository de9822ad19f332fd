package maintenance_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
)

// PruneMarks deletes the marks written before a time and keeps the others.
func TestPruneMarks(t *testing.T) {
	cli := etcdtest.Client(t)
	m, err := maintenance.New(cli, maintenance.WithMarkPrefix(etcdtest.Prefix(t)+"marks/"))
	require.NoError(t, err)
	ctx := etcdtest.Context(t, 10*time.Second)
	var marks []maintenance.RevisionMark
	for range 3 {
		mk, err := m.Mark(ctx)
		require.NoError(t, err)
		marks = append(marks, mk)
	}
	n, err := m.PruneMarks(ctx, marks[2].Time)
	require.NoError(t, err)
	assert.EqualValues(t, 2, n)
	left, err := m.Marks(ctx)
	require.NoError(t, err)
	assert.Equal(t, marks[2:], left)
	n, err = m.PruneMarks(ctx, marks[0].Time)
	require.NoError(t, err)
	assert.Zero(t, n, "nothing older")
}

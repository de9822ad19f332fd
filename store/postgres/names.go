package postgres

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// names keeps the value_names dictionary in memory: a set of value names is written
// once and never changes, so both directions can be cached for good.
type names struct {
	mu    sync.Mutex
	byKey map[string]int32
	byID  map[int32][]string
}

func namesKey(ns []string) string { return strings.Join(ns, "\x00") }

// split returns values' names sorted and the numbers in that order.
func split(values map[string]float64) ([]string, []float64) {
	if len(values) == 0 {
		return nil, nil
	}
	ns := make([]string, 0, len(values))
	for n := range values {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	vs := make([]float64, len(ns))
	for i, n := range ns {
		vs[i] = values[n]
	}
	return ns, vs
}

// arrayLiteral writes vs as a PostgreSQL float8[] literal (exact: shortest round-trip
// formatting).
func arrayLiteral(vs []float64) *string {
	if vs == nil {
		return nil
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	}
	b.WriteByte('}')
	s := b.String()
	return &s
}

// ids returns the dictionary id of each set, adding the sets it does not have.
func (s *Store) ids(ctx context.Context, sets [][]string) (map[string]int32, error) {
	out := make(map[string]int32, len(sets))
	var missing [][]string
	s.names.mu.Lock()
	for _, ns := range sets {
		k := namesKey(ns)
		if id, ok := s.names.byKey[k]; ok {
			out[k] = id
		} else {
			missing = append(missing, ns)
		}
	}
	s.names.mu.Unlock()
	for _, ns := range missing {
		var id int32
		// DO UPDATE (to itself) so that RETURNING answers for a set another process added.
		if err := s.pool.QueryRow(ctx, `INSERT INTO value_names (names) VALUES ($1)
	ON CONFLICT (names) DO UPDATE SET names = excluded.names RETURNING id`, ns).Scan(&id); err != nil {
			return nil, err
		}
		s.remember(id, ns)
		out[namesKey(ns)] = id
	}
	return out, nil
}

func (s *Store) remember(id int32, ns []string) {
	s.names.mu.Lock()
	defer s.names.mu.Unlock()
	if s.names.byKey == nil {
		s.names.byKey, s.names.byID = map[string]int32{}, map[int32][]string{}
	}
	s.names.byKey[namesKey(ns)] = id
	s.names.byID[id] = ns
}

// lookup returns the names of each id, reading the ones it does not know.
func (s *Store) lookup(ctx context.Context, q querier, ids []int32) (map[int32][]string, error) {
	out := make(map[int32][]string, len(ids))
	var missing []int32
	s.names.mu.Lock()
	for _, id := range ids {
		if ns, ok := s.names.byID[id]; ok {
			out[id] = ns
		} else if !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	s.names.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT id, names FROM value_names WHERE id = ANY($1)`, missing)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int32
		var ns []string
		if err := rows.Scan(&id, &ns); err != nil {
			return nil, err
		}
		s.remember(id, ns)
		out[id] = ns
	}
	return out, rows.Err()
}

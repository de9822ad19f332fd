package discovery

import (
	"sort"
	"strconv"
)

// ring is a consistent-hash ring with vnodes points per endpoint. Points are derived from
// the instance ID, so an instance keeps its arcs when others come and go.
type ring struct {
	hashes []uint64 // sorted
	owners []int32  // index into view.eps, parallel to hashes
}

func newRing(eps []*endpoint, vnodes int) *ring {
	type point struct {
		h     uint64
		owner int32
	}
	pts := make([]point, 0, len(eps)*vnodes)
	var buf []byte
	for i, ep := range eps {
		for v := range vnodes {
			buf = append(buf[:0], ep.inst.ID...)
			buf = append(buf, '#')
			buf = strconv.AppendInt(buf, int64(v), 10)
			pts = append(pts, point{hash64(buf), int32(i)})
		}
	}
	sort.Slice(pts, func(i, j int) bool {
		if pts[i].h != pts[j].h {
			return pts[i].h < pts[j].h
		}
		return pts[i].owner < pts[j].owner
	})
	r := &ring{hashes: make([]uint64, len(pts)), owners: make([]int32, len(pts))}
	for i, p := range pts {
		r.hashes[i], r.owners[i] = p.h, p.owner
	}
	return r
}

// lookup returns the owner of the first point at or after hash(key) whose endpoint is
// healthy, walking clockwise past the ones cooling down.
func (r *ring) lookup(eps []*endpoint, key string, now func() int64) *endpoint {
	if r == nil || len(r.hashes) == 0 {
		return nil
	}
	h := hashString(key)
	i := sort.Search(len(r.hashes), func(i int) bool { return r.hashes[i] >= h })
	for n := 0; n < len(r.hashes); n++ {
		ep := eps[r.owners[(i+n)%len(r.hashes)]]
		if ep.st.healthy(now) {
			return ep
		}
	}
	return nil
}

// hash64 is FNV-1a followed by a 64-bit finaliser (from MurmurHash3) for an even spread.
// It is fixed, so every process maps a key to the same point.
func hash64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix64(h)
}

func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix64(h)
}

func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

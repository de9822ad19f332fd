package metrics

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
)

// Bucket's hand-written JSON is what encoding/json wrote for it, and reads back.
func TestBucketJSON(t *testing.T) {
	for _, b := range []Bucket{
		{0.001, 0}, {0.0005, 7}, {1e-9, 1}, {1e21, 2}, {0.016, 90}, {8.192, 1 << 40},
		{math.Inf(1), math.MaxUint64}, {math.Inf(-1), 3}, {math.NaN(), 4}, {0, 0}, {-0.5, 5},
	} {
		got, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(bucketJSON{UpperBound: strconv.FormatFloat(b.UpperBound, 'g', -1, 64), Count: b.Count})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%v: %s, want %s", b, got, want)
		}
		var back Bucket
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		if back.Count != b.Count || (back.UpperBound != b.UpperBound && !math.IsNaN(b.UpperBound)) {
			t.Errorf("%s read back as %v", got, back)
		}
	}
}

func BenchmarkBucketJSON(b *testing.B) {
	bs := make([]Bucket, 16)
	for i := range bs {
		bs[i] = Bucket{UpperBound: 0.001 * math.Pow(2, float64(i)), Count: uint64(1000 * i)}
	}
	bs[15].UpperBound = math.Inf(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(bs); err != nil {
			b.Fatal(err)
		}
	}
}

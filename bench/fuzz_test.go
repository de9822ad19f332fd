package bench

import (
	"encoding/json"
	"testing"
)

// FuzzConfig feeds arbitrary request bodies to the config validation: it must never
// panic, and whatever it accepts must stay within every bound, with no product of two
// fields overflowing. The seed corpus is in testdata/fuzz/FuzzConfig.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(`{"workload":"mixed","ops":1000}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var c Config
		if json.Unmarshal(body, &c) != nil {
			return
		}
		if c.Validate() != nil {
			return
		}
		d := c.Defaults()
		workers := int64(d.Connections) * int64(d.Clients)
		switch {
		case d.Connections < 1 || d.Connections > MaxConnections, d.Clients < 1 || d.Clients > MaxClients, workers > MaxWorkers:
			t.Fatalf("workers out of bounds: %+v", d)
		case d.KeySize < 1 || d.KeySize > MaxKeySize, d.ValueSize < 1 || d.ValueSize > MaxValueSize:
			t.Fatalf("sizes out of bounds: %+v", d)
		case d.Ops < 0 || d.Ops > MaxOps, d.KeySpace < 1 || d.KeySpace > MaxKeySpace, d.RangeLimit < 1 || d.RangeLimit > MaxRangeLimit:
			t.Fatalf("counts out of bounds: %+v", d)
		case d.TxnOps < 1 || d.TxnOps > MaxTxnOps, d.Duration < 0 || d.Duration > MaxDuration, d.OpTimeout < 0 || d.OpTimeout > MaxOpTimeout:
			t.Fatalf("out of bounds: %+v", d)
		case !(d.Rate >= 0 && d.Rate <= MaxRate), !(d.ReadRatio >= 0 && d.ReadRatio <= 1):
			t.Fatalf("rate or ratio out of bounds: %+v", d)
		case workers*d.opBytes() > MaxInFlightBytes || d.requestBytes() > MaxRequestBytes:
			t.Fatalf("too many bytes in flight: %+v", d)
		}
		w, _ := ParseWorkload(string(d.Workload))
		d.Workload = w
		if need := int64(d.Ops)*writeCost(d) + int64(d.KeySpace)*putCost(d.KeySize, d.ValueSize); need < 0 {
			t.Fatalf("the quota estimate overflows: %+v", d)
		}
		if d.maxIndex() < 0 {
			t.Fatalf("the key index overflows: %+v", d)
		}
		// Every key of the run has its fixed size and keeps the prefix.
		ks := newKeySpace(d.Prefix+"abcdef/", d.KeySize)
		k := ks.key(d.maxIndex())
		if len(k) != d.KeySize || k[:len(d.Prefix)] != d.Prefix {
			t.Fatalf("key %q escapes prefix %q or size %d", k, d.Prefix, d.KeySize)
		}
	})
}

package backoff

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNextGrowsToMaxWithJitter(t *testing.T) {
	b := New(10*time.Millisecond, 80*time.Millisecond)
	want := []time.Duration{10, 20, 40, 80, 80, 80}
	for i, w := range want {
		w *= time.Millisecond
		d := b.Next()
		if d < w/2 || d > w {
			t.Fatalf("attempt %d: delay %v outside [%v, %v]", i, d, w/2, w)
		}
	}
	b.Reset()
	if d := b.Next(); d > 10*time.Millisecond {
		t.Fatalf("after Reset: delay %v, want at most 10ms", d)
	}
}

func TestDefaults(t *testing.T) {
	b := New(0, 0)
	if b.Min != 50*time.Millisecond || b.Max != b.Min {
		t.Fatalf("defaults: min %v max %v", b.Min, b.Max)
	}
}

func TestWaitStopsOnCancel(t *testing.T) {
	b := New(time.Hour, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b.Wait(ctx) {
		t.Fatal("Wait reported a full delay on a cancelled context")
	}
}

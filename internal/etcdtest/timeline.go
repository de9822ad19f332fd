package etcdtest

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Timeline records timed events of a progress run (faults, elections, write outcomes,
// log lines) to find where time goes after a fault. A nil *Timeline records nothing, so
// callers need not check whether one is wanted.
type Timeline struct {
	mu    sync.Mutex
	start time.Time
	ev    []timelineEvent
}

type timelineEvent struct {
	at  time.Duration
	who string
	msg string
}

// NewTimeline returns a Timeline whose clock starts now.
func NewTimeline() *Timeline { return &Timeline{start: time.Now()} }

// Add records an event of who.
func (t *Timeline) Add(who, format string, args ...any) {
	if t == nil {
		return
	}
	at := time.Since(t.start)
	msg := fmt.Sprintf(format, args...)
	t.mu.Lock()
	t.ev = append(t.ev, timelineEvent{at, who, msg})
	t.mu.Unlock()
}

// Print writes the events in time order, each line starting with label.
func (t *Timeline) Print(w io.Writer, label string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	sort.SliceStable(t.ev, func(i, j int) bool { return t.ev[i].at < t.ev[j].at })
	for _, e := range t.ev {
		fmt.Fprintf(w, "%s %7.3f %-6s %s\n", label, e.at.Seconds(), e.who, e.msg)
	}
}

// Logger returns a logger that records its lines as events of who (a no-op logger for a
// nil Timeline).
func (t *Timeline) Logger(who string) *zap.Logger {
	if t == nil {
		return zap.NewNop()
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.TimeKey = ""
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(timelineWriter{t, who}), zap.DebugLevel))
}

type timelineWriter struct {
	t   *Timeline
	who string
}

func (w timelineWriter) Write(p []byte) (int, error) {
	w.t.Add(w.who, "log: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// WriteLog records a writer's write outcomes on a Timeline, only when they change (or
// after a gap in successful writes). It is used by one goroutine.
type WriteLog struct {
	t      *Timeline
	who    string
	lastOK time.Time
	n      int
	failed string
}

// NewWriteLog returns a WriteLog of who on t (nil: records nothing).
func NewWriteLog(t *Timeline, who string) *WriteLog { return &WriteLog{t: t, who: who} }

// Log records the outcome of one write: applied (ok), refused by its guard, or err.
func (w *WriteLog) Log(ok bool, err error) {
	if w == nil || w.t == nil {
		return
	}
	now := time.Now()
	switch {
	case err == nil && ok:
		switch {
		case w.lastOK.IsZero():
			w.t.Add(w.who, "write ok (first)")
			w.n = 0
		case now.Sub(w.lastOK) > 150*time.Millisecond || w.failed != "":
			w.t.Add(w.who, "write ok (run of %d before, gap %v)", w.n, now.Sub(w.lastOK).Round(time.Millisecond))
			w.n = 0
		}
		w.n++
		w.lastOK = now
		w.failed = ""
	default:
		msg := "guard failed"
		if err != nil {
			msg = err.Error()
		}
		if msg != w.failed {
			w.t.Add(w.who, "write FAIL: %s", msg)
		}
		w.failed = msg
	}
}

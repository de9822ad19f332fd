package election_test

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// timeline (-timeline) prints, per side of BenchmarkProgressUnderFaults, when each fault
// started and every transition of the writers (first write of a leadership, failed writes,
// campaigns), to find where time goes after a fault.
var timeline = flag.Bool("timeline", false, "BenchmarkProgressUnderFaults prints a timeline of faults and writes")

type tlog struct {
	mu    sync.Mutex
	start time.Time
	ev    []tev
}

type tev struct {
	at  time.Duration
	who string
	msg string
}

func newTlog() *tlog { return &tlog{start: time.Now()} }

func (t *tlog) add(who, format string, args ...any) {
	if t == nil || !*timeline {
		return
	}
	t.mu.Lock()
	t.ev = append(t.ev, tev{time.Since(t.start), who, fmt.Sprintf(format, args...)})
	t.mu.Unlock()
}

func (t *tlog) print(side string) {
	if t == nil || !*timeline {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	sort.SliceStable(t.ev, func(i, j int) bool { return t.ev[i].at < t.ev[j].at })
	for _, e := range t.ev {
		fmt.Fprintf(os.Stderr, "%s %7.3f %-6s %s\n", side, e.at.Seconds(), e.who, e.msg)
	}
}

// writeLog logs a writer's write outcomes, only when they change (or after a gap).
type writeLog struct {
	t      *tlog
	who    string
	lastOK time.Time
	n      int
	failed string
}

func (w *writeLog) log(ok bool, err error) {
	if w.t == nil || !*timeline {
		return
	}
	now := time.Now()
	switch {
	case err == nil && ok:
		if w.lastOK.IsZero() || now.Sub(w.lastOK) > 150*time.Millisecond || w.failed != "" {
			w.t.add(w.who, "write ok (run of %d before, gap %v)", w.n, now.Sub(w.lastOK).Round(time.Millisecond))
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
			w.t.add(w.who, "write FAIL: %s", msg)
		}
		w.failed = msg
	}
}

type tlWriter struct {
	t   *tlog
	who string
}

func (w tlWriter) Write(p []byte) (int, error) {
	w.t.add(w.who, "log: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// logger returns a logger writing to the timeline (a no-op without -timeline).
func (t *tlog) logger(who string) *zap.Logger {
	if !*timeline {
		return zap.NewNop()
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.TimeKey = ""
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(tlWriter{t, who}), zap.DebugLevel))
}

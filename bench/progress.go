package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// progress reports how far a run has got: a bar redrawn in place on a terminal, and a
// plain line per 10% otherwise (logs and pipes would fill with carriage returns, or with
// a line a second of a long run).
type progress struct {
	w        io.Writer
	cfg      Config
	start    time.Time
	terminal bool
	decile   int // off a terminal: the last tenth reported
}

// lineCheck is how often progress off a terminal looks for a tenth reached.
const lineCheck = 50 * time.Millisecond

func newProgress(w io.Writer, cfg Config, start time.Time) *progress {
	return &progress{w: w, cfg: cfg, start: start, terminal: isTerminal(w)}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progress) run(done <-chan struct{}, every time.Duration, completed *atomic.Int64) {
	if !p.terminal {
		every = min(every, lineCheck)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			p.print(completed.Load(), true)
			return
		case <-t.C:
			p.print(completed.Load(), false)
		}
	}
}

func (p *progress) print(n int64, final bool) {
	elapsed := time.Since(p.start)
	frac := 0.0
	switch {
	case final:
		frac = 1
	case p.cfg.Ops > 0:
		frac = float64(n) / float64(p.cfg.Ops)
	case p.cfg.Duration > 0:
		frac = elapsed.Seconds() / p.cfg.Duration.Seconds()
	}
	frac = min(max(frac, 0), 1)
	rate := float64(n) / max(elapsed.Seconds(), 1e-9)
	if !p.terminal {
		// A line for each tenth reached since the last one, each with the counts now.
		for d := int(frac * 10); p.decile < d; {
			p.decile++
			fmt.Fprintf(p.w, "bench %s: %d ops, %.0f ops/s, %3d%%, %v\n", p.cfg.Workload, n, rate, p.decile*10, elapsed.Round(time.Millisecond))
		}
		return
	}
	const width = 30
	filled := int(frac * width)
	end := ""
	if final {
		end = "\n"
	}
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %d ops %.0f ops/s%s", p.cfg.Workload,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), frac*100, n, rate, end)
}

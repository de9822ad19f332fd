package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// On a terminal the bar is redrawn in place and ends with a newline.
func TestProgressBarOnATerminal(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, Config{Workload: Write, Ops: 200}, time.Now())
	p.terminal = true
	p.print(50, false)
	p.print(200, true)
	s := out.String()
	assert.Equal(t, 2, strings.Count(s, "\r"), "%q", s)
	assert.Contains(t, s, "[=======                       ]  25% 50 ops")
	assert.Contains(t, s, "[==============================] 100% 200 ops")
	assert.True(t, strings.HasSuffix(s, "\n"))
	assert.Equal(t, 1, strings.Count(s, "\n"))
}

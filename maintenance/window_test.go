package maintenance_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/maintenance"
)

func at(t *testing.T, zone, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	require.NoError(t, err)
	tm, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	require.NoError(t, err)
	return tm
}

func TestWindowContains(t *testing.T) {
	// 2026-11-28 is a Saturday.
	for _, tc := range []struct {
		window, zone, time string
		in                 bool
	}{
		{"Sat,Sun 02:00-04:00", "UTC", "2026-11-28 02:00", true},
		{"Sat,Sun 02:00-04:00", "UTC", "2026-11-28 03:59", true},
		{"Sat,Sun 02:00-04:00", "UTC", "2026-11-28 04:00", false},
		{"Sat,Sun 02:00-04:00", "UTC", "2026-11-28 01:59", false},
		{"Sat,Sun 02:00-04:00", "UTC", "2026-11-30 03:00", false}, // Monday
		{"sat,sunday 02:00-04:00 UTC", "UTC", "2026-11-29 03:00", true},
		// In the window's zone, not the caller's: 02:30 in Berlin is 01:30 UTC in winter.
		{"Sat 02:00-04:00 Europe/Berlin", "UTC", "2026-11-28 01:30", true},
		{"Sat 02:00-04:00 Europe/Berlin", "UTC", "2026-11-28 03:30", false},
		// Across midnight: the days name the day the window opens.
		{"Fri 22:00-02:00", "UTC", "2026-11-27 23:00", true},
		{"Fri 22:00-02:00", "UTC", "2026-11-28 01:59", true},
		{"Fri 22:00-02:00", "UTC", "2026-11-28 02:00", false},
		{"Fri 22:00-02:00", "UTC", "2026-11-28 23:00", false},     // Saturday evening
		{"Fri 22:00-02:00", "UTC", "2026-11-27 01:00", false},     // Friday early morning: Thursday's window
		{"Mon-Fri 22:00-02:00", "UTC", "2026-11-24 01:00", true},  // Tuesday 01:00, Monday's window
		{"Mon-Fri 22:00-02:00", "UTC", "2026-11-30 01:00", false}, // Monday 01:00, Sunday has none
		{"Fri-Mon 12:00-13:00", "UTC", "2026-11-29 12:30", true},  // ranges wrap the week
		{"Fri-Mon 12:00-13:00", "UTC", "2026-11-25 12:30", false},
		{"* 00:00-24:00", "UTC", "2026-11-25 12:30", true},
		{"Sun 23:00-24:00", "UTC", "2026-11-29 23:59", true},
		{"Sun 23:00-24:00", "UTC", "2026-11-30 00:00", false},
	} {
		w, err := maintenance.ParseWindow(tc.window)
		require.NoError(t, err, tc.window)
		assert.Equal(t, tc.in, w.Contains(at(t, tc.zone, tc.time)), "%s at %s %s", tc.window, tc.time, tc.zone)
	}
	assert.False(t, maintenance.Window{}.Contains(time.Now()), "the zero window contains nothing")
}

func TestWindowNext(t *testing.T) {
	w := maintenance.MustParseWindow("Sat,Sun 02:00-04:00 Europe/Berlin")
	wed := at(t, "Europe/Berlin", "2026-11-25 12:00")
	assert.True(t, at(t, "Europe/Berlin", "2026-11-28 02:00").Equal(w.Next(wed)))
	in := at(t, "Europe/Berlin", "2026-11-29 03:00")
	assert.True(t, in.Equal(w.Next(in)), "inside the window, Next is now")
	sunLate := at(t, "Europe/Berlin", "2026-11-29 05:00")
	assert.True(t, at(t, "Europe/Berlin", "2026-12-05 02:00").Equal(w.Next(sunLate)))
}

// The hour skipped in spring: a window inside it does not open that day; the day after
// it opens as usual.
func TestWindowDaylightSaving(t *testing.T) {
	w := maintenance.MustParseWindow("* 02:15-02:45 Europe/Berlin")
	// 2026-03-29: clocks go from 02:00 to 03:00 in Berlin.
	assert.False(t, w.Contains(at(t, "UTC", "2026-03-29 01:30")), "03:30 local, after the skipped window")
	next := w.Next(at(t, "UTC", "2026-03-28 23:00"))
	assert.True(t, at(t, "Europe/Berlin", "2026-03-30 02:15").Equal(next), "next: %v", next)
	// A window that starts in the skipped hour and ends after it opens that day when the
	// clocks reach its rest: Next agrees with Contains.
	w2 := maintenance.MustParseWindow("Sun 02:00-04:00 Europe/Berlin")
	before := at(t, "UTC", "2026-03-28 23:30") // 00:30 local
	next = w2.Next(before)
	assert.True(t, at(t, "UTC", "2026-03-29 01:00").Equal(next), "next: %v", next) // 03:00 CEST
	assert.True(t, w2.Contains(next))
	// Autumn: 02:30 happens twice; both are inside.
	assert.True(t, w.Contains(at(t, "UTC", "2026-10-25 00:30")))
	assert.True(t, w.Contains(at(t, "UTC", "2026-10-25 01:30")))
}

func TestParseWindowRejects(t *testing.T) {
	for _, s := range []string{
		"", "Sat", "Sat 02:00", "Sat 02:00-", "Xyz 02:00-04:00", "Sa 02:00-04:00", "Sat 2:00-04:00",
		"Sat 02:00-02:00", "Sat 24:00-02:00", "Sat 02:60-03:00", "Sat 02:00-25:00", "Sat 02:00-04:00 Mars/Olympus",
		"Sat 02:00-04:00 Local", "Sat 02:00-04:00 UTC extra", "Mon-Xyz 02:00-04:00",
	} {
		_, err := maintenance.ParseWindow(s)
		assert.ErrorIs(t, err, maintenance.ErrInvalidArgument, "%q", s)
	}
}

func TestWindowJSON(t *testing.T) {
	var v struct{ W maintenance.Window }
	require.NoError(t, json.Unmarshal([]byte(`{"W":"Mon-Fri 22:00-02:00 Europe/Paris"}`), &v))
	assert.Equal(t, "Mon-Fri 22:00-02:00 Europe/Paris", v.W.String())
	b, err := json.Marshal(v)
	require.NoError(t, err)
	assert.JSONEq(t, `{"W":"Mon-Fri 22:00-02:00 Europe/Paris"}`, string(b))
	assert.Error(t, json.Unmarshal([]byte(`{"W":"Mon 22:00"}`), &v))
}

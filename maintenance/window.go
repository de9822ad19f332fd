package maintenance

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Window is a recurring maintenance window: a time-of-day range on some days of the
// week, in a time zone, such as "Sat,Sun 02:00-04:00 Europe/Berlin" or
// "Mon-Fri 22:00-02:00 UTC". Use ParseWindow; the zero Window contains no time.
//
// A range whose end is not after its start crosses midnight, and the days name the day
// the window opens: "Fri 22:00-02:00" includes Saturday 01:00. Times are wall-clock
// times in the zone, so a window keeps its local hours across daylight-saving changes
// (a window in the hour skipped in spring does not open that day).
type Window struct {
	days       [7]bool // by time.Weekday
	start, end int     // minutes since midnight; end in 1..1440
	loc        *time.Location
	spec       string
}

var weekdays = [7]string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

// ParseWindow parses "DAYS HH:MM-HH:MM [ZONE]". DAYS is "*" (every day) or a comma
// list of days and day ranges ("Mon-Fri", "Sat,Sun", "mon,wed-fri"), by English name or
// its first three letters, any case. The times run from 00:00 to 24:00 (24:00 only as
// an end). ZONE is an IANA name ("Europe/Berlin") and defaults to UTC. Errors wrap
// ErrInvalidArgument.
func ParseWindow(s string) (Window, error) {
	bad := func(format string, args ...any) (Window, error) {
		return Window{}, fmt.Errorf("%w: maintenance window %q: %s", ErrInvalidArgument, s, fmt.Sprintf(format, args...))
	}
	f := strings.Fields(s)
	if len(f) < 2 || len(f) > 3 {
		return bad(`want "DAYS HH:MM-HH:MM [ZONE]", such as "Sat,Sun 02:00-04:00 Europe/Berlin"`)
	}
	w := Window{loc: time.UTC}
	if f[0] == "*" {
		w.days = [7]bool{true, true, true, true, true, true, true}
	} else {
		for _, part := range strings.Split(f[0], ",") {
			from, to, isRange := strings.Cut(part, "-")
			a, ok := weekday(from)
			if !ok {
				return bad("unknown day %q (want Mon, Tue, ... Sun, or *)", from)
			}
			b := a
			if isRange {
				if b, ok = weekday(to); !ok {
					return bad("unknown day %q (want Mon, Tue, ... Sun, or *)", to)
				}
			}
			for d := a; ; d = (d + 1) % 7 {
				w.days[d] = true
				if d == b {
					break
				}
			}
		}
	}
	from, to, ok := strings.Cut(f[1], "-")
	if !ok {
		return bad("time range %q: want HH:MM-HH:MM", f[1])
	}
	var err error
	if w.start, err = clockMinutes(from, false); err != nil {
		return bad("start: %v", err)
	}
	if w.end, err = clockMinutes(to, true); err != nil {
		return bad("end: %v", err)
	}
	if w.start == w.end || (w.start == 0 && w.end == 0) {
		return bad("start and end are the same time; for a whole day write 00:00-24:00")
	}
	if len(f) == 3 {
		if w.loc, err = time.LoadLocation(f[2]); err != nil || f[2] == "Local" {
			return bad("unknown time zone %q (want an IANA name such as Europe/Berlin, or UTC)", f[2])
		}
	}
	w.spec = strings.Join(f, " ")
	return w, nil
}

func weekday(s string) (time.Weekday, bool) {
	s = strings.ToLower(s)
	if len(s) < 3 {
		return 0, false
	}
	for i, name := range weekdays {
		if strings.HasPrefix(name, s) {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// clockMinutes parses HH:MM; 24:00 only when end.
func clockMinutes(s string, end bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	switch {
	case !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil:
		return 0, fmt.Errorf("%q: want HH:MM", s)
	case hh == 24 && mm == 0 && end:
		return 24 * 60, nil
	case hh < 0 || hh > 23 || mm < 0 || mm > 59:
		return 0, fmt.Errorf("%q: want 00:00 to 23:59 (or 24:00 as an end)", s)
	}
	return hh*60 + mm, nil
}

// MustParseWindow is ParseWindow for windows known to be valid; it panics otherwise.
func MustParseWindow(s string) Window {
	w, err := ParseWindow(s)
	if err != nil {
		panic(err)
	}
	return w
}

// IsZero reports whether w is the zero Window, which contains no time.
func (w Window) IsZero() bool { return w.loc == nil }

// String returns the window as ParseWindow reads it.
func (w Window) String() string { return w.spec }

// MarshalText returns String's text, so a Window reads and writes as a string in JSON.
func (w Window) MarshalText() ([]byte, error) { return []byte(w.spec), nil }

// UnmarshalText parses text with ParseWindow.
func (w *Window) UnmarshalText(text []byte) error {
	p, err := ParseWindow(string(text))
	if err != nil {
		return err
	}
	*w = p
	return nil
}

// opening returns when the window opens on the given date (in w's zone), whether or
// not it opens on that weekday.
func (w Window) opening(y int, m time.Month, d int) time.Time {
	return time.Date(y, m, d, w.start/60, w.start%60, 0, 0, w.loc)
}

// Contains reports whether t is inside the window: whether the wall-clock time in the
// window's zone is in the range (so both instances of an hour repeated in autumn are).
func (w Window) Contains(t time.Time) bool {
	if w.IsZero() {
		return false
	}
	lt := t.In(w.loc)
	tod := lt.Hour()*60 + lt.Minute()
	today, yesterday := lt.Weekday(), (lt.Weekday()+6)%7
	if w.start < w.end {
		return w.days[today] && tod >= w.start && tod < w.end
	}
	return (w.days[today] && tod >= w.start) || (w.days[yesterday] && tod < w.end)
}

// Next returns t when t is inside the window, else the next time it opens (the zero time
// for the zero Window).
func (w Window) Next(t time.Time) time.Time {
	if w.IsZero() {
		return time.Time{}
	}
	if w.Contains(t) {
		return t
	}
	lt := t.In(w.loc)
	y, m, d := lt.Date()
	for i := 0; i <= 8; i++ {
		open := w.opening(y, m, d+i)
		if !w.days[open.Weekday()] || !open.After(t) {
			continue
		}
		// An opening in the hour skipped in spring comes out an hour later: the window
		// opens then if it is still open (it ends after the skipped hour), else not that day.
		if open.Hour()*60+open.Minute() == w.start || w.Contains(open) {
			return open
		}
	}
	return time.Time{} // a window whose every opening falls in skipped local time
}

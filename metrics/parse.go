package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

// A member's /metrics is parsed as a stream, line by line, and only the lines of the
// families the collector uses are read at all: a real etcd member serves about 180 KB in
// 130 families, of which the collector needs about 25, and etcd ignores requests to
// filter (name[]), so skipping cheaply is where the time goes. Values are added up as
// they are read, so no per-series objects are built, and memory does not grow with the
// body: a buffer of scrapeBufSize, one sum per gRPC code (gRPC's 17 and "Other") and
// histograms of at most maxBuckets buckets, whatever the member sends.

const (
	// scrapeBufSize is the read buffer of one scrape; a line of a family the collector
	// uses may not be longer (lines of other families may be any length).
	scrapeBufSize = 64 << 10
	// maxBuckets bounds the distinct bucket bounds of one histogram (etcd's have < 30).
	maxBuckets = 128
	// maxCount bounds a histogram count, so that it converts to uint64 exactly enough.
	maxCount = 1 << 53
	// maxBound bounds the finite bucket bounds of a histogram, in seconds: etcd's go up
	// to 8.192 s, and any quantile of buckets within [0, maxBound] (11.6 days) converts
	// to a time.Duration (at most 292 years) with room to spare.
	maxBound = 1e6
)

// slot is a counter or gauge the collector reads.
type slot int

const (
	sHasLeader slot = iota
	sIsLeader
	sLeaderChanges
	sCommitted
	sApplied
	sPending
	sFailed
	sPuts
	sRanges
	sTxns
	sDeletes
	sDBSize
	sDBInUse
	sQuota
	sWatchers
	sWatchStreams
	sCPU
	sRSS
	sOpenFDs
	sMaxFDs
	sFSAvail
	sFSSize
	nSlots
)

// Histograms the collector reads.
const (
	hFsync = iota
	hCommit
	hPeer
	nHists
)

type familyKind uint8

const (
	kindSum     familyKind = iota // counter, gauge or untyped: the sum of all series
	kindFirst                     // the first series only (node_filesystem_*: one per mount)
	kindHandled                   // grpc_server_handled_total
	kindStarted                   // grpc_server_started_total
	kindHist                      // a histogram's _bucket, _sum and _count lines
)

type family struct {
	kind familyKind
	idx  int // slot or histogram index
}

// families are the families the collector reads, by name (histograms by base name).
var families = map[string]family{
	"etcd_server_has_leader":                    {kindSum, int(sHasLeader)},
	"etcd_server_is_leader":                     {kindSum, int(sIsLeader)},
	"etcd_server_leader_changes_seen_total":     {kindSum, int(sLeaderChanges)},
	"etcd_server_proposals_committed_total":     {kindSum, int(sCommitted)},
	"etcd_server_proposals_applied_total":       {kindSum, int(sApplied)},
	"etcd_server_proposals_pending":             {kindSum, int(sPending)},
	"etcd_server_proposals_failed_total":        {kindSum, int(sFailed)},
	"etcd_mvcc_put_total":                       {kindSum, int(sPuts)},
	"etcd_mvcc_range_total":                     {kindSum, int(sRanges)},
	"etcd_mvcc_txn_total":                       {kindSum, int(sTxns)},
	"etcd_mvcc_delete_total":                    {kindSum, int(sDeletes)},
	"etcd_mvcc_db_total_size_in_bytes":          {kindSum, int(sDBSize)},
	"etcd_mvcc_db_total_size_in_use_in_bytes":   {kindSum, int(sDBInUse)},
	"etcd_server_quota_backend_bytes":           {kindSum, int(sQuota)},
	"etcd_debugging_mvcc_watcher_total":         {kindSum, int(sWatchers)},
	"etcd_debugging_mvcc_watch_stream_total":    {kindSum, int(sWatchStreams)},
	"process_cpu_seconds_total":                 {kindSum, int(sCPU)},
	"process_resident_memory_bytes":             {kindSum, int(sRSS)},
	"process_open_fds":                          {kindSum, int(sOpenFDs)},
	"process_max_fds":                           {kindSum, int(sMaxFDs)},
	"node_filesystem_avail_bytes":               {kindFirst, int(sFSAvail)},
	"node_filesystem_size_bytes":                {kindFirst, int(sFSSize)},
	"grpc_server_handled_total":                 {kindHandled, 0},
	"grpc_server_started_total":                 {kindStarted, 0},
	"etcd_disk_wal_fsync_duration_seconds":      {kindHist, hFsync},
	"etcd_disk_backend_commit_duration_seconds": {kindHist, hCommit},
	"etcd_network_peer_round_trip_time_seconds": {kindHist, hPeer},
}

// FamilyNames returns the names of the families the collector reads from a member's
// /metrics, sorted (histograms by their base name).
func FamilyNames() []string {
	out := make([]string, 0, len(families))
	for n := range families {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// histAcc accumulates one histogram over all its series.
type histAcc struct {
	buckets []bucket // not cumulative across series until finish; +Inf included
	count   float64
	sum     float64
	// bad is set by a bucket bound out of range: the histogram is left out of the
	// scrape, as if the member did not serve it.
	bad bool
}

// grpcCodes are gRPC's status code names, as go-grpc-middleware labels them, in the
// order of their numbers. Every other grpc_code value a member serves is counted as
// otherCode: a label value is any string up to the line's length, and a member's codes
// are kept in every snapshot of its history.
var grpcCodes = [...]string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
	"Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}

const (
	// otherCode is the code every grpc_code value other than grpcCodes is counted as.
	otherCode = "Other"
	// nCodes is the number of codes counted: gRPC's and otherCode, at index codeOther.
	nCodes    = len(grpcCodes) + 1
	codeOther = nCodes - 1
)

// codeIndex returns the index of a grpc_code value in grpcCodes, or codeOther. A
// switch, which the compiler makes a binary search by length and content, rather than a
// map or a loop over grpcCodes: it builds no string, and takes a few comparisons.
func codeIndex(code []byte) int {
	switch string(code) {
	case "OK":
		return 0
	case "Canceled":
		return 1
	case "Unknown":
		return 2
	case "InvalidArgument":
		return 3
	case "DeadlineExceeded":
		return 4
	case "NotFound":
		return 5
	case "AlreadyExists":
		return 6
	case "PermissionDenied":
		return 7
	case "ResourceExhausted":
		return 8
	case "FailedPrecondition":
		return 9
	case "Aborted":
		return 10
	case "OutOfRange":
		return 11
	case "Unimplemented":
		return 12
	case "Internal":
		return 13
	case "Unavailable":
		return 14
	case "DataLoss":
		return 15
	case "Unauthenticated":
		return 16
	}
	return codeOther
}

// codeName is the name of the code at index i.
func codeName(i int) string {
	if i == codeOther {
		return otherCode
	}
	return grpcCodes[i]
}

// byCode returns the unary calls by gRPC code, leaving out codes with none (etcd
// exports all 17 codes of every method from its start, mostly zeros; a history of
// snapshots would hold them all), or nil when there were none at all. Its keys are the
// constant names, shared by every snapshot.
func (p *parsed) byCode() map[string]float64 {
	n := 0
	for _, v := range p.codes {
		if v != 0 {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make(map[string]float64, n)
	for i, v := range p.codes {
		if v != 0 {
			out[codeName(i)] = v
		}
	}
	return out
}

// parsed is what one scrape yields.
type parsed struct {
	vals  [nSlots]float64
	seen  [nSlots]bool
	hists [nHists]histAcc
	// unary handled, stream handled and stream started gRPC calls.
	unary, streamHandled, streamStarted float64
	codes                               [nCodes]float64 // unary handled, by codeIndex
	// dropped counts samples that were NaN or ±Inf, sums that overflowed, and
	// histograms left out for a bucket bound out of range.
	dropped int
}

// readers are the scrapes' read buffers, kept across garbage collections (a sync.Pool
// empties in two): a daemon scraping members every few seconds would otherwise allocate
// a fresh buffer for most scrapes. A scrape when all are in use gets a new one, kept
// only if there is room when it ends.
var readers = make(chan *bufio.Reader, 8)

func getReader(r io.Reader) *bufio.Reader {
	select {
	case br := <-readers:
		br.Reset(r)
		return br
	default:
		return bufio.NewReaderSize(r, scrapeBufSize)
	}
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	select {
	case readers <- br:
	default:
	}
}

// errTooLarge is returned by parse when the body exceeds the limit.
var errTooLarge = errors.New("body too large")

// parse reads a Prometheus text exposition from r, at most limit bytes.
func parse(r io.Reader, limit int64) (*parsed, error) {
	lr := &io.LimitedReader{R: r, N: limit + 1}
	br := getReader(lr)
	defer putReader(br)
	p := &parsed{}
	lineNo := 0
	for {
		line, err := br.ReadSlice('\n')
		lineNo++
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: only a family we skip may have one.
			if _, ok := lookup(metricName(trimSpace(line))); ok {
				return nil, fmt.Errorf("line %d: longer than %d bytes", lineNo, scrapeBufSize)
			}
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return nil, err
			}
			if err == io.EOF {
				break
			}
			continue
		}
		if len(line) > 0 {
			if perr := p.line(line); perr != nil {
				return nil, fmt.Errorf("line %d: %w", lineNo, perr)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if lr.N <= 0 {
		return nil, fmt.Errorf("%w: over %d bytes", errTooLarge, limit)
	}
	p.sanitize()
	return p, nil
}

// sanitize drops sums that overflowed to ±Inf (finite values, added up): JSON has no
// infinity either.
func (p *parsed) sanitize() {
	for i, v := range p.vals {
		if math.IsInf(v, 0) || math.IsNaN(v) {
			p.vals[i], p.seen[i] = 0, false
			p.dropped++
		}
	}
	for _, f := range []*float64{&p.unary, &p.streamHandled, &p.streamStarted} {
		if math.IsInf(*f, 0) || math.IsNaN(*f) {
			*f = 0
			p.dropped++
		}
	}
	for i, v := range p.codes {
		if math.IsInf(v, 0) || math.IsNaN(v) {
			p.codes[i] = 0
			p.dropped++
		}
	}
	for i := range p.hists {
		h := &p.hists[i]
		if h.bad {
			p.dropped++
		}
		if math.IsInf(h.sum, 0) || math.IsNaN(h.sum) {
			h.sum = 0
			p.dropped++
		}
	}
}

// metricName returns the name a sample line starts with, or nil for a comment, a blank
// line or a quoted (UTF-8) name, none of which name a family the collector reads.
func metricName(line []byte) []byte {
	for i, c := range line {
		switch c {
		case '{', ' ', '\t', '\n', '\r':
			return line[:i]
		case '#', '"':
			return nil
		}
	}
	return line
}

// lookup finds the family a sample name belongs to; histogram series are found by
// their base name.
func lookup(name []byte) (family, bool) {
	if len(name) == 0 {
		return family{}, false
	}
	if f, ok := families[string(name)]; ok && f.kind != kindHist {
		return f, true
	}
	for _, suffix := range [...]string{"_bucket", "_sum", "_count"} {
		if base, ok := bytes.CutSuffix(name, []byte(suffix)); ok {
			if f, ok := families[string(base)]; ok && f.kind == kindHist {
				return f, true
			}
		}
	}
	return family{}, false
}

// labels holds the few label values the collector reads from one sample.
type labels struct {
	grpcType, grpcCode, le []byte
	// upper is a bucket's bound when it is a number already (the protobuf format); le is
	// then not read.
	upper    float64
	hasUpper bool
}

func (p *parsed) line(line []byte) error {
	line = trimSpace(line) // the format allows blanks before the name
	name := metricName(line)
	f, ok := lookup(name)
	if !ok {
		return nil
	}
	rest := line[len(name):]
	var ls labels
	if len(rest) > 0 && rest[0] == '{' {
		var err error
		if rest, err = parseLabels(rest[1:], &ls); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	v, err := parseValue(rest)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return p.sample(f, name, ls, v)
}

// sample adds one sample of family f, named name (a histogram's with its suffix), as
// the text format writes it, whichever format it was read from.
func (p *parsed) sample(f family, name []byte, ls labels, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		// Sanitized at the source: JSON has no NaN or infinity, and a sum or rate over
		// one is meaningless. The series counts as absent.
		p.dropped++
		return nil
	}
	switch f.kind {
	case kindSum:
		p.vals[f.idx] += v
		p.seen[f.idx] = true
	case kindFirst:
		if !p.seen[f.idx] {
			p.vals[f.idx], p.seen[f.idx] = v, true
		}
	case kindHandled:
		if string(ls.grpcType) == "unary" {
			p.unary += v
			p.codes[codeIndex(ls.grpcCode)] += v
		} else {
			p.streamHandled += v
		}
	case kindStarted:
		if string(ls.grpcType) != "unary" {
			p.streamStarted += v
		}
	case kindHist:
		return p.hists[f.idx].add(name, ls, v)
	}
	return nil
}

// add adds one line of the histogram. A count out of range or a bound that is no
// number is an error (the body is not what a Prometheus client writes); a bound that is
// a number but no bucket bound of seconds (NaN, negative, -Inf, or over maxBound: a
// quantile of it would be a negative or overflowing duration) leaves the histogram out.
func (h *histAcc) add(name []byte, ls labels, v float64) error {
	switch {
	case bytes.HasSuffix(name, []byte("_sum")):
		if !h.bad {
			h.sum += v
		}
	case bytes.HasSuffix(name, []byte("_count")):
		if v < 0 || v > maxCount {
			return fmt.Errorf("%s: count %g out of range", name, v)
		}
		if !h.bad {
			h.count += v
		}
	default:
		if ls.le == nil && !ls.hasUpper {
			return fmt.Errorf("%s: bucket without le", name)
		}
		if v < 0 || v > maxCount {
			return fmt.Errorf("%s: bucket count %g out of range", name, v)
		}
		upper := ls.upper
		if !ls.hasUpper {
			var err error
			if upper, err = strconv.ParseFloat(string(ls.le), 64); err != nil {
				return fmt.Errorf("%s: bad le %q", name, ls.le)
			}
		}
		if h.bad {
			return nil
		}
		if !(upper >= 0 && upper <= maxBound) && !math.IsInf(upper, +1) { // NaN included
			*h = histAcc{bad: true}
			return nil
		}
		if upper == 0 {
			upper = 0 // not -0
		}
		for i := range h.buckets {
			if h.buckets[i].upper == upper {
				// Both are at most maxCount, so the sum does not overflow.
				h.buckets[i].count = min(h.buckets[i].count+uint64(v), maxCount)
				return nil
			}
		}
		if len(h.buckets) >= maxBuckets {
			return fmt.Errorf("%s: more than %d buckets", name, maxBuckets)
		}
		h.buckets = append(h.buckets, bucket{upper: upper, count: uint64(v)})
	}
	return nil
}

// finish returns the merged cumulative histogram, +Inf last with the total count. What
// a member serves is made cumulative: each bucket at least the one before and at most
// the total, as Prometheus' histogram_quantile does, so that shares stay within [0, 1].
func (h *histAcc) finish() hist {
	out := hist{count: uint64(min(h.count, maxCount)), sum: h.sum}
	out.buckets = make([]bucket, 0, len(h.buckets)+1)
	for _, b := range h.buckets {
		if !math.IsInf(b.upper, +1) {
			out.buckets = append(out.buckets, b)
		}
	}
	slices.SortFunc(out.buckets, func(a, b bucket) int {
		switch {
		case a.upper < b.upper:
			return -1
		case a.upper > b.upper:
			return 1
		}
		return 0
	})
	var below uint64
	for i := range out.buckets {
		b := &out.buckets[i]
		b.count = min(max(b.count, below), out.count)
		below = b.count
	}
	out.buckets = append(out.buckets, bucket{upper: math.Inf(+1), count: out.count})
	return out
}

// parseLabels reads label pairs after the opening brace up to the closing one, keeping
// the values of the labels the collector reads, and returns what follows the brace.
func parseLabels(b []byte, ls *labels) ([]byte, error) {
	for {
		b = trimSpace(b)
		if len(b) == 0 {
			return nil, errors.New("unterminated label set")
		}
		if b[0] == '}' {
			return b[1:], nil
		}
		eq := bytes.IndexByte(b, '=')
		if eq <= 0 {
			return nil, errors.New("bad label")
		}
		lname := bytes.TrimSpace(b[:eq])
		b = trimSpace(b[eq+1:])
		if len(b) == 0 || b[0] != '"' {
			return nil, errors.New("label value not quoted")
		}
		value, rest, err := quoted(b[1:])
		if err != nil {
			return nil, err
		}
		switch string(lname) {
		case "grpc_type":
			ls.grpcType = value
		case "grpc_code":
			ls.grpcCode = value
		case "le":
			ls.le = value
		}
		b = trimSpace(rest)
		if len(b) > 0 && b[0] == ',' {
			b = b[1:]
		}
	}
}

// quoted reads a label value up to its closing quote, unescaping \\, \" and \n.
func quoted(b []byte) (value, rest []byte, err error) {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			return b[:i], b[i+1:], nil
		case '\\':
			return unescape(b)
		}
	}
	return nil, nil, errors.New("unterminated label value")
}

func unescape(b []byte) (value, rest []byte, err error) {
	var out []byte
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			return out, b[i+1:], nil
		case '\\':
			i++
			if i == len(b) {
				return nil, nil, errors.New("unterminated label value")
			}
			switch b[i] {
			case 'n':
				out = append(out, '\n')
			case '\\', '"':
				out = append(out, b[i])
			default:
				return nil, nil, fmt.Errorf("bad escape \\%c", b[i])
			}
		default:
			out = append(out, c)
		}
	}
	return nil, nil, errors.New("unterminated label value")
}

// parseValue reads the sample value; a timestamp after it is ignored.
func parseValue(b []byte) (float64, error) {
	b = trimSpace(b)
	end := 0
	for end < len(b) && b[end] != ' ' && b[end] != '\t' && b[end] != '\n' && b[end] != '\r' {
		end++
	}
	if end == 0 {
		return 0, errors.New("no value")
	}
	v, err := strconv.ParseFloat(string(b[:end]), 64)
	if err != nil {
		return 0, fmt.Errorf("bad value %q", b[:end])
	}
	return v, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

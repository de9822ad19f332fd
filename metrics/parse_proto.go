package metrics

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
)

// The protobuf exposition format, which etcd serves when asked for it, is a stream of
// io.prometheus.client.MetricFamily messages, each after its length as a varint. A
// family the collector does not use is skipped by that length as soon as its name (its
// first field, as every Prometheus client writes it) is read, without looking at its
// bytes: the text format has to be read to the end of every line of every family. The
// metrics of the families it uses are decoded in place from the read buffer, each at
// most scrapeBufSize bytes (as a line of the text format), and every sample the text
// format would write for them goes to the same accumulators through (*parsed).sample:
// both formats of a registry yield the same values, and the same bounds hold.
//
// What no Prometheus client writes is an error when it concerns a family the collector
// uses: a name or type after the family's metrics, a repeated name, a metric over
// scrapeBufSize, malformed fields. A family is the one its first name says (protobuf
// would take the last, but a family the collector does not use is not read past its
// name). Fields the collector does not read are skipped, as protobuf does; a Metric's
// repeated submessages merge as protobuf merges them.

// protoFormat is the Content-Type of the protobuf exposition format.
const protoFormat = "application/vnd.google.protobuf"

// Field numbers of client_model's metrics.proto.
const (
	pbFamilyName   = 1
	pbFamilyType   = 3
	pbFamilyMetric = 4

	pbMetricLabel     = 1
	pbMetricGauge     = 2
	pbMetricCounter   = 3
	pbMetricSummary   = 4
	pbMetricUntyped   = 5
	pbMetricHistogram = 7

	pbLabelName  = 1
	pbLabelValue = 2

	pbValue = 1 // of Gauge, Counter and Untyped

	pbSummaryCount    = 1
	pbSummarySum      = 2
	pbSummaryQuantile = 3
	pbQuantileValue   = 2

	pbHistCount      = 1
	pbHistSum        = 2
	pbHistBucket     = 3
	pbHistCountFloat = 4

	pbBucketCount      = 1
	pbBucketUpper      = 2
	pbBucketCountFloat = 4
)

// The samples the text format writes for a family, by the suffix of their name.
const (
	lineValue  = iota // a counter's, gauge's or untyped value, or a summary's quantile
	lineBucket        // _bucket
	lineSum           // _sum
	lineCount         // _count
	nLines
)

var lineSuffixes = [nLines]string{"", "_bucket", "_sum", "_count"}

// protoFamily says where the samples of a family go.
type protoFamily struct {
	lines [nLines]struct {
		name []byte // the family's name and the line's suffix
		f    family
		ok   bool // the collector reads samples of that name
	}
}

// protoFamilies are the families a sample of which the collector reads, by family name:
// the families themselves, and the names whose samples the text format would write
// with the name of one (a histogram's "_sum" served as a gauge, say, whose lines the text
// parser reads too). No other name has a sample lookup finds: a sample's name is a
// family's name and maybe a suffix, and no suffix ends another.
var protoFamilies = func() map[string]*protoFamily {
	out := map[string]*protoFamily{}
	for name, f := range families {
		candidates := []string{name}
		for _, s := range lineSuffixes[1:] {
			if f.kind == kindHist {
				candidates = append(candidates, name+s)
			}
			if len(name) > len(s) && name[len(name)-len(s):] == s {
				candidates = append(candidates, name[:len(name)-len(s)])
			}
		}
		for _, c := range candidates {
			pf := &protoFamily{}
			used := false
			for i, s := range lineSuffixes {
				l := &pf.lines[i]
				l.name = []byte(c + s)
				l.f, l.ok = lookup(l.name)
				used = used || l.ok
			}
			if used {
				out[c] = pf
			}
		}
	}
	return out
}()

// errTruncated is returned by the protobuf parser when the body ends inside a message.
var errTruncated = errors.New("body ends inside a message")

// errMalformed is returned by the protobuf parser for what is no protobuf.
var errMalformed = errors.New("malformed protobuf")

// protoDecoder reads one body of the protobuf format.
type protoDecoder struct {
	br    *bufio.Reader
	lr    *io.LimitedReader
	limit int64
	p     *parsed
	pf    *protoFamily // the family being read, if the collector uses it
	typ   dto.MetricType
}

// parseProto reads a Prometheus protobuf exposition (length-delimited MetricFamily
// messages) from r, at most limit bytes, into what parse reads from the text format.
func parseProto(r io.Reader, limit int64) (*parsed, error) {
	lr := &io.LimitedReader{R: r, N: limit + 1}
	br := getReader(lr)
	defer putReader(br)
	d := &protoDecoder{br: br, lr: lr, limit: limit, p: &parsed{}}
	for n := 1; ; n++ {
		d.pf = nil
		if _, err := br.Peek(1); err == io.EOF {
			break
		}
		size, _, err := d.varint(binaryMaxVarint)
		if err == nil {
			err = d.family(size)
		}
		if err != nil {
			if errors.Is(err, errTruncated) && lr.N <= 0 {
				return nil, fmt.Errorf("%w: over %d bytes", errTooLarge, limit)
			}
			if errors.Is(err, errTooLarge) {
				return nil, err
			}
			if d.pf != nil {
				return nil, fmt.Errorf("family %d (%s): %w", n, d.pf.lines[lineValue].name, err)
			}
			return nil, fmt.Errorf("family %d: %w", n, err)
		}
	}
	if lr.N <= 0 {
		return nil, fmt.Errorf("%w: over %d bytes", errTooLarge, limit)
	}
	d.p.sanitize()
	return d.p, nil
}

const binaryMaxVarint = 10

// readErr is what a read that came short says.
func readErr(err error) error {
	if err == io.EOF || err == nil {
		return errTruncated
	}
	return err
}

// varint reads a varint of at most left bytes.
func (d *protoDecoder) varint(left int) (v uint64, n int, err error) {
	want := min(left, binaryMaxVarint)
	b, err := d.br.Peek(want)
	if v, n = protowire.ConsumeVarint(b); n < 0 {
		if len(b) < want {
			return 0, 0, readErr(err)
		}
		return 0, 0, errMalformed
	}
	_, _ = d.br.Discard(n) // buffered
	return v, n, nil
}

// skip discards n bytes.
func (d *protoDecoder) skip(n int) error {
	if m, err := d.br.Discard(n); m < n {
		return readErr(err)
	}
	return nil
}

// family reads one MetricFamily of size bytes.
func (d *protoDecoder) family(size uint64) error {
	if size > uint64(d.limit) {
		return fmt.Errorf("%w: a family of %d bytes, over %d", errTooLarge, size, d.limit)
	}
	left := int(size)
	d.pf, d.typ = nil, dto.MetricType_COUNTER
	named, metrics, lateType := false, 0, false
	for left > 0 {
		tag, n, err := d.varint(left)
		if err != nil {
			return err
		}
		left -= n
		num, typ := protowire.DecodeTag(tag)
		if num < protowire.MinValidNumber {
			return errMalformed
		}
		switch {
		case num == pbFamilyName && typ == protowire.BytesType:
			l, n, err := d.varint(left)
			if err != nil {
				return err
			}
			left -= n
			if l > uint64(left) {
				return errMalformed
			}
			if named {
				return errors.New("family name repeated")
			}
			named = true
			if l <= maxProtoName {
				b, err := d.br.Peek(int(l))
				if err != nil {
					return readErr(err)
				}
				d.pf = protoFamilies[string(b)]
			}
			if d.pf == nil {
				return d.skip(left)
			}
			if metrics > 0 || lateType {
				return errors.New("family name after its metrics")
			}
			if err := d.skip(int(l)); err != nil {
				return err
			}
			left -= int(l)
		case num == pbFamilyType && typ == protowire.VarintType:
			v, n, err := d.varint(left)
			if err != nil {
				return err
			}
			left -= n
			if metrics > 0 {
				if named {
					return errors.New("family type after its metrics")
				}
				lateType = true
			}
			if v <= uint64(dto.MetricType_GAUGE_HISTOGRAM) {
				d.typ = dto.MetricType(v) // an unknown value is no type, as in proto2
			}
		case num == pbFamilyMetric && typ == protowire.BytesType:
			l, n, err := d.varint(left)
			if err != nil {
				return err
			}
			left -= n
			if l > uint64(left) {
				return errMalformed
			}
			metrics++
			if d.pf == nil {
				if err := d.skip(int(l)); err != nil {
					return err
				}
				left -= int(l)
				continue
			}
			if l > scrapeBufSize {
				return fmt.Errorf("metric %d: longer than %d bytes", metrics, scrapeBufSize)
			}
			b, err := d.br.Peek(int(l))
			if err != nil {
				return readErr(err)
			}
			if err := d.metric(b); err != nil {
				return fmt.Errorf("metric %d: %w", metrics, err)
			}
			_, _ = d.br.Discard(int(l)) // buffered
			left -= int(l)
		default:
			n, err := d.skipField(typ, left)
			if err != nil {
				return err
			}
			left -= n
		}
	}
	return nil
}

// maxProtoName is longer than any name in protoFamilies.
const maxProtoName = 128

// skipField skips the value of a field of wire type typ that is not read, of at most
// left bytes, and returns its size.
func (d *protoDecoder) skipField(typ protowire.Type, left int) (int, error) {
	var n int
	switch typ {
	case protowire.VarintType:
		_, n, err := d.varint(left)
		return n, err
	case protowire.Fixed32Type:
		n = 4
	case protowire.Fixed64Type:
		n = 8
	case protowire.BytesType:
		l, k, err := d.varint(left)
		if err != nil {
			return 0, err
		}
		if l > uint64(left-k) {
			return 0, errMalformed
		}
		return k + int(l), d.skip(int(l))
	default: // groups (deprecated, and in no Prometheus message) and invalid types
		return 0, errMalformed
	}
	if n > left {
		return 0, errMalformed
	}
	return n, d.skip(n)
}

// next reads the field b starts with: its number, its wire type, its value (the bytes
// of a length-delimited one, the encoding of others) and what follows it. Tags and
// lengths of one byte, which are most, are read inline.
func next(b []byte) (num protowire.Number, typ protowire.Type, v, rest []byte, ok bool) {
	var tag uint64
	n := 1
	if len(b) > 0 && b[0] < 0x80 {
		tag = uint64(b[0])
	} else if tag, n = protowire.ConsumeVarint(b); n < 0 {
		return 0, 0, nil, nil, false
	}
	num, typ = protowire.DecodeTag(tag)
	if num < protowire.MinValidNumber {
		return 0, 0, nil, nil, false
	}
	b = b[n:]
	switch typ {
	case protowire.BytesType:
		var l uint64
		n = 1
		if len(b) > 0 && b[0] < 0x80 {
			l = uint64(b[0])
		} else if l, n = protowire.ConsumeVarint(b); n < 0 {
			return 0, 0, nil, nil, false
		}
		if l > uint64(len(b)-n) {
			return 0, 0, nil, nil, false
		}
		end := n + int(l)
		return num, typ, b[n:end], b[end:], true
	case protowire.Fixed64Type:
		n = 8
	case protowire.Fixed32Type:
		n = 4
	default: // varints, and groups, which no Prometheus message has, skipped as protobuf does
		n = protowire.ConsumeFieldValue(num, typ, b)
	}
	if n < 0 || n > len(b) {
		return 0, 0, nil, nil, false
	}
	return num, typ, b[:n], b[n:], true
}

func fixed64(v []byte) float64 {
	u, _ := protowire.ConsumeFixed64(v)
	return math.Float64frombits(u)
}

func varint(v []byte) uint64 {
	u, _ := protowire.ConsumeVarint(v)
	return u
}

// noBytes is the value of a label whose value is absent: empty, as the text format
// writes it, not missing.
var noBytes = []byte{}

// metric adds the samples the text format writes for one Metric of the family being read.
func (d *protoDecoder) metric(b []byte) error {
	// The field holding the value, by the family's type; the text format writes nothing
	// for a metric without it.
	var want protowire.Number
	switch d.typ {
	case dto.MetricType_COUNTER:
		want = pbMetricCounter
	case dto.MetricType_GAUGE:
		want = pbMetricGauge
	case dto.MetricType_UNTYPED:
		want = pbMetricUntyped
	case dto.MetricType_SUMMARY:
		want = pbMetricSummary
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		want = pbMetricHistogram
	}
	var ls labels
	var value float64
	hasValue := false
	for m := b; len(m) > 0; {
		num, typ, v, rest, ok := next(m)
		if !ok {
			return errMalformed
		}
		m = rest
		if typ != protowire.BytesType {
			continue
		}
		switch num {
		case pbMetricLabel:
			if !label(v, &ls) {
				return errMalformed
			}
		case want:
			hasValue = true
			if want == pbMetricSummary || want == pbMetricHistogram {
				continue // read below, once the labels are known
			}
			// Repeated submessages merge: the last value wins.
			for len(v) > 0 {
				num, typ, f, rest, ok := next(v)
				if !ok {
					return errMalformed
				}
				v = rest
				if num == pbValue && typ == protowire.Fixed64Type {
					value = fixed64(f)
				}
			}
		}
	}
	switch {
	case !hasValue:
		return nil
	case want == pbMetricSummary:
		return d.summary(b, ls)
	case want == pbMetricHistogram:
		return d.histogram(b, ls)
	}
	return d.line(lineValue, ls, value)
}

// line adds one sample the text format writes, if the collector reads its name.
func (d *protoDecoder) line(i int, ls labels, v float64) error {
	l := &d.pf.lines[i]
	if !l.ok {
		return nil
	}
	return d.p.sample(l.f, l.name, ls, v)
}

// Tags of a LabelPair's name and value.
const (
	labelNameTag  = pbLabelName<<3 | byte(protowire.BytesType)
	labelValueTag = pbLabelValue<<3 | byte(protowire.BytesType)
)

// label reads a LabelPair into ls.
func label(b []byte, ls *labels) bool {
	name, value := []byte(nil), noBytes
	if n := len(b); n >= 4 && b[0] == labelNameTag && b[1] < 0x80 && int(b[1])+4 <= n &&
		b[b[1]+2] == labelValueTag && b[b[1]+3] < 0x80 && int(b[1])+4+int(b[b[1]+3]) == n {
		// As every client writes a label shorter than 128 bytes: its name, then its value.
		name, value = b[2:b[1]+2], b[b[1]+4:]
	} else {
		for len(b) > 0 {
			num, typ, v, rest, ok := next(b)
			if !ok {
				return false
			}
			b = rest
			if typ == protowire.BytesType {
				switch num {
				case pbLabelName:
					name = v
				case pbLabelValue:
					value = v
				}
			}
		}
	}
	switch string(name) {
	case "grpc_type":
		ls.grpcType = value
	case "grpc_code":
		ls.grpcCode = value
	case "le":
		ls.le = value
	}
	return true
}

// submessage returns the next field num of message *b that is a message, and moves *b
// past it; ok is false at the end of *b, err says if *b is malformed.
func submessage(b *[]byte, num protowire.Number) (v []byte, ok bool, err error) {
	for len(*b) > 0 {
		n, typ, v, rest, ok := next(*b)
		if !ok {
			return nil, false, errMalformed
		}
		*b = rest
		if n == num && typ == protowire.BytesType {
			return v, true, nil
		}
	}
	return nil, false, nil
}

// summary adds a summary's samples as the text format writes them: each quantile, then
// _sum and _count. Its fields may be spread over several Summary messages, which merge.
func (d *protoDecoder) summary(b []byte, ls labels) error {
	var count uint64
	var sum float64
	for {
		s, ok, err := submessage(&b, pbMetricSummary)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		for len(s) > 0 {
			num, typ, v, rest, ok := next(s)
			if !ok {
				return errMalformed
			}
			s = rest
			switch {
			case num == pbSummaryCount && typ == protowire.VarintType:
				count = varint(v)
			case num == pbSummarySum && typ == protowire.Fixed64Type:
				sum = fixed64(v)
			case num == pbSummaryQuantile && typ == protowire.BytesType:
				var q float64
				for len(v) > 0 {
					num, typ, f, rest, ok := next(v)
					if !ok {
						return errMalformed
					}
					v = rest
					if num == pbQuantileValue && typ == protowire.Fixed64Type {
						q = fixed64(f)
					}
				}
				if err := d.line(lineValue, ls, q); err != nil {
					return err
				}
			}
		}
	}
	if err := d.line(lineSum, ls, sum); err != nil {
		return err
	}
	return d.line(lineCount, ls, float64(count))
}

// histogram adds a histogram's samples as the text format writes them: each bucket,
// +Inf if it is not one of them, then _sum and _count. Its fields may be spread over
// several Histogram messages, which merge.
func (d *protoDecoder) histogram(b []byte, ls labels) error {
	var count uint64
	var countFloat, sum float64
	for m := b; ; {
		h, ok, err := submessage(&m, pbMetricHistogram)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		for len(h) > 0 {
			num, typ, v, rest, ok := next(h)
			if !ok {
				return errMalformed
			}
			h = rest
			switch {
			case num == pbHistCount && typ == protowire.VarintType:
				count = varint(v)
			case num == pbHistCountFloat && typ == protowire.Fixed64Type:
				countFloat = fixed64(v)
			case num == pbHistSum && typ == protowire.Fixed64Type:
				sum = fixed64(v)
			}
		}
	}
	total := countFloat
	if total == 0 {
		total = float64(count)
	}
	if d.pf.lines[lineBucket].ok {
		bl := ls
		bl.hasUpper = true
		infSeen := false
		for m := b; ; {
			h, ok, err := submessage(&m, pbMetricHistogram)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			for {
				bk, ok, err := submessage(&h, pbHistBucket)
				if err != nil {
					return err
				}
				if !ok {
					break
				}
				var c uint64
				var cf float64
				bl.upper = 0
				for len(bk) > 0 {
					num, typ, v, rest, ok := next(bk)
					if !ok {
						return errMalformed
					}
					bk = rest
					switch {
					case num == pbBucketCount && typ == protowire.VarintType:
						c = varint(v)
					case num == pbBucketCountFloat && typ == protowire.Fixed64Type:
						cf = fixed64(v)
					case num == pbBucketUpper && typ == protowire.Fixed64Type:
						bl.upper = fixed64(v)
					}
				}
				if cf == 0 {
					cf = float64(c)
				}
				if math.IsInf(bl.upper, +1) {
					infSeen = true
				}
				if err := d.line(lineBucket, bl, cf); err != nil {
					return err
				}
			}
		}
		if !infSeen {
			bl.upper = math.Inf(+1)
			if err := d.line(lineBucket, bl, total); err != nil {
				return err
			}
		}
	}
	if err := d.line(lineSum, ls, sum); err != nil {
		return err
	}
	return d.line(lineCount, ls, total)
}

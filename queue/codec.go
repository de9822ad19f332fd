package queue

import (
	"encoding/binary"
	"errors"
)

// envelope is what an item key holds: the ID, the number of deliveries so far, and the
// payload, in a compact binary form (version byte, uvarint deliveries, uvarint ID length,
// ID, payload).
type envelope struct {
	id         string
	deliveries int
	value      []byte
}

const envelopeVersion = 1

var errMalformed = errors.New("malformed item")

func encode(e envelope) string {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(e.id)+len(e.value))
	b = append(b, envelopeVersion)
	b = binary.AppendUvarint(b, uint64(e.deliveries))
	b = binary.AppendUvarint(b, uint64(len(e.id)))
	b = append(b, e.id...)
	b = append(b, e.value...)
	return string(b)
}

func decode(b []byte) (envelope, error) {
	if len(b) == 0 || b[0] != envelopeVersion {
		return envelope{}, errMalformed
	}
	b = b[1:]
	d, n := binary.Uvarint(b)
	if n <= 0 {
		return envelope{}, errMalformed
	}
	b = b[n:]
	l, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < l {
		return envelope{}, errMalformed
	}
	b = b[n:]
	return envelope{id: string(b[:l]), deliveries: int(d), value: append([]byte(nil), b[l:]...)}, nil
}

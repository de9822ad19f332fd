package health

import (
	"fmt"
	"strconv"
)

// ID is an etcd member or cluster ID. As text and in JSON it is the hexadecimal string
// etcdctl prints (for example "8e9e05c52164694d"; 0, "no leader", is "0"), so that an ID
// reads the same in every answer, log line and label. Format it with %x.
type ID uint64

// MarshalText writes the ID in hexadecimal.
func (id ID) MarshalText() ([]byte, error) { return strconv.AppendUint(nil, uint64(id), 16), nil }

// UnmarshalText reads a hexadecimal ID.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 16, 64)
	if err != nil {
		return fmt.Errorf("%w: ID %q: want a hexadecimal number", ErrInvalidArgument, b)
	}
	*id = ID(v)
	return nil
}

// Hex returns the ID as MarshalText writes it.
func (id ID) Hex() string { return strconv.FormatUint(uint64(id), 16) }

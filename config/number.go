package config

import (
	"errors"
	"strconv"
	"strings"
)

// decimal is a JSON number in a canonical form: sign, significant digits without
// leading or trailing zeros, and a power of ten. Two numbers are equal exactly when
// their decimals are, whatever their JSON spelling ("1000000", "1e6", "1000000.0").
type decimal struct {
	neg    bool
	digits string // "" for zero
	exp    int    // value = digits × 10^exp
}

var errNotNumber = errors.New("not a JSON number")

// maxExp bounds the exponents parseDecimal accepts, so that no input can make it
// allocate: numbers beyond it are neither ints nor anything a rule compares.
const maxExp = 1 << 20

// parseDecimal reads a number in JSON syntax.
func parseDecimal(s string) (decimal, error) {
	var d decimal
	if strings.HasPrefix(s, "-") {
		d.neg, s = true, s[1:]
	}
	mant, expPart, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, hasDot := strings.Cut(mant, ".")
	if intPart == "" || !allDigits(intPart) || (hasDot && (frac == "" || !allDigits(frac))) ||
		(len(intPart) > 1 && intPart[0] == '0') {
		return decimal{}, errNotNumber
	}
	exp := 0
	if hasExp {
		e := strings.TrimPrefix(expPart, "+")
		neg := strings.HasPrefix(e, "-")
		e = strings.TrimPrefix(e, "-")
		if e == "" || !allDigits(e) {
			return decimal{}, errNotNumber
		}
		e = strings.TrimLeft(e, "0")
		if len(e) > 7 {
			return decimal{}, errors.New("exponent out of range")
		}
		n, _ := strconv.Atoi("0" + e)
		if n > maxExp {
			return decimal{}, errors.New("exponent out of range")
		}
		if neg {
			n = -n
		}
		exp = n
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	exp -= len(frac)
	trimmed := strings.TrimRight(digits, "0")
	exp += len(digits) - len(trimmed)
	d.digits, d.exp = trimmed, exp
	if d.digits == "" {
		d.neg, d.exp = false, 0
	}
	return d, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// exactInt returns the value of a JSON number if it is an integer that fits an int.
func exactInt(s string) (int, error) {
	n, err := exactIntBits(s, strconv.IntSize)
	return int(n), err
}

// exactIntBits returns the value of a JSON number if it is an integer that fits bits.
func exactIntBits(s string, bits int) (int64, error) {
	d, err := parseDecimal(s)
	if err != nil {
		return 0, err
	}
	if d.digits == "" {
		return 0, nil
	}
	if d.exp < 0 {
		return 0, errors.New("not an integer")
	}
	if len(d.digits)+d.exp > 20 {
		return 0, errors.New("out of range for int")
	}
	lit := d.digits + strings.Repeat("0", d.exp)
	if d.neg {
		lit = "-" + lit
	}
	n, err := strconv.ParseInt(lit, 10, bits)
	if err != nil {
		return 0, errors.New("out of range for int")
	}
	return n, nil
}

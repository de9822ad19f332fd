package postgres

import "errors"

var (
	// ErrInvalidArgument means an argument is unusable; the error's message names it.
	ErrInvalidArgument = errors.New("postgres: invalid argument")
	// ErrSchema means the database's schema cannot be used: a migration failed, or the
	// schema is newer than this program.
	ErrSchema = errors.New("postgres: schema")
	// ErrLeaseLost means a lease is not (or no longer) held by its holder: it expired
	// or another holder took it.
	ErrLeaseLost = errors.New("postgres: lease lost")
	// ErrFenced means a write made under a lease was refused because the lease's token
	// is no longer the current one: another holder took over.
	ErrFenced = errors.New("postgres: write fenced off: lease token is not current")
)

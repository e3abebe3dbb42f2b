package placement

import "errors"

var (
	// ErrUnplaceable is wrapped by the error Check returns when a rule is
	// well formed but the devices cannot satisfy it (too few failure domains
	// holding a usable device of the rule's class). The message says what is
	// missing and what the operator can do about it.
	ErrUnplaceable = errors.New("placement: rule cannot be placed")

	// ErrBadRule is wrapped by the errors of ParseDomain and Check when a rule
	// is malformed: an unknown failure domain or a size below 1.
	ErrBadRule = errors.New("placement: bad rule")
)

// ruleError carries an operator-facing message and classifies it under one
// of the sentinels above, so callers use errors.Is and never match text.
type ruleError struct {
	msg  string // complete message, starting with "placement: "
	kind error  // ErrUnplaceable or ErrBadRule
}

func (e *ruleError) Error() string { return e.msg }
func (e *ruleError) Unwrap() error { return e.kind }

package wire

import "errors"

var (
	// ErrFrameTooLarge is returned when a frame's declared length exceeds
	// MaxFrame; the connection must be closed.
	ErrFrameTooLarge = errors.New("wire: frame too large")
	// ErrMalformed is returned when a frame body does not decode.
	ErrMalformed = errors.New("wire: malformed message")
)

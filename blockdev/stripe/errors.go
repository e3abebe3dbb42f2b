package stripe

import "errors"

// ErrInvalid: a layout breaks one of the rules of Layout.Validate.
var ErrInvalid = errors.New("stripe: invalid layout")

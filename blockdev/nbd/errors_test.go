package nbd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"
)

func TestNbdErrno(t *testing.T) {
	tests := []struct {
		err  error
		want uint32
	}{
		{nil, 0},
		{errors.New("disk on fire"), errnoIO},
		{fmt.Errorf("image: %w", ErrNoSpace), errnoNoSpace},
		{fmt.Errorf("write: %w", syscall.ENOSPC), errnoNoSpace},
		{syscall.EDQUOT, errnoNoSpace},
		{syscall.EFBIG, errnoNoSpace},
		{ErrReadOnly, errnoPerm},
		{fmt.Errorf("snap: %w", syscall.EROFS), errnoPerm},
		{fmt.Errorf("%w: x", ErrUnknownCommand), errnoInval},
		{fmt.Errorf("%w: x", ErrBadFlags), errnoInval},
		{fmt.Errorf("%w: x", ErrOutOfRange), errnoInval},
		{fmt.Errorf("%w: %w: x", ErrOutOfRange, ErrNoSpace), errnoNoSpace}, // write past end
		{ErrMisaligned, errnoInval},
		{ErrTooLarge, errnoInval},
		{ErrZeroLength, errnoInval},
		{ErrBadFlush, errnoInval},
		{ErrNoMetaContext, errnoInval},
		{ErrBadExtents, errnoIO},
		{context.Canceled, errnoShutdown},
		{ErrShutdown, errnoShutdown},
		{context.DeadlineExceeded, errnoIO},
	}
	for _, tc := range tests {
		if got := nbdErrno(tc.err); got != tc.want {
			t.Errorf("nbdErrno(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	if m := errorMessage(fmt.Errorf("%w: offset 5", ErrMisaligned)); !strings.Contains(m, "offset 5") {
		t.Errorf("validation message %q lost its detail", m)
	}
	if m := errorMessage(errors.New("osd.3 at 10.0.0.7 is down")); strings.Contains(m, "10.0.0.7") {
		t.Errorf("backend detail leaked: %q", m)
	}
}

func TestOptionReplyType(t *testing.T) {
	tests := []struct {
		err  error
		want uint32
	}{
		{fmt.Errorf("open: %w", ErrExportNotFound), repErrUnknown},
		{fs.ErrNotExist, repErrUnknown},
		{fmt.Errorf("locked: %w", ErrRefused), repErrPolicy},
		{fs.ErrPermission, repErrPolicy},
		{context.Canceled, repErrShutdown},
		{ErrBadOption, repErrInvalid},
		{errors.New("cluster unreachable"), repErrUnknown},
	}
	for _, tc := range tests {
		if got := optionReplyType(tc.err); got != tc.want {
			t.Errorf("optionReplyType(%v) = %#x, want %#x", tc.err, got, tc.want)
		}
	}
}

func TestWireString(t *testing.T) {
	long := strings.Repeat("é", 3000) // 6000 bytes
	for _, s := range []string{"plain", "nul\x00inside", "bad \xff utf8", long} {
		w := wireString(s, maxStringLen)
		if len(w) > maxStringLen || !utf8.ValidString(w) || strings.ContainsRune(w, 0) {
			t.Errorf("wireString(%.20q) = %.20q (%d bytes)", s, w, len(w))
		}
	}
}

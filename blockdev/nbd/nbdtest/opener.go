package nbdtest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
)

// Opener is an nbd.Opener over named Images. Safe for concurrent use.
type Opener struct {
	mu      sync.Mutex // guards the following
	images  map[string]*Image
	refused map[string]error
	open    int // Exports opened and not yet closed
	opens   int // Open calls that succeeded
	infos   int // Info calls that succeeded
}

var _ nbd.Opener = (*Opener)(nil)

// NewOpener returns an Opener without images.
func NewOpener() *Opener {
	return &Opener{images: make(map[string]*Image), refused: make(map[string]error)}
}

// Add makes im available as name and returns it.
func (o *Opener) Add(name string, im *Image) *Image {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.images[name] = im
	return im
}

// Refuse makes Open of name fail with err (wrapped); nil undoes it.
func (o *Opener) Refuse(name string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err == nil {
		delete(o.refused, name)
	} else {
		o.refused[name] = err
	}
}

// Open implements nbd.Opener.
func (o *Opener) Open(_ context.Context, name string, readOnly bool) (nbd.Export, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.refused[name]; err != nil {
		return nil, fmt.Errorf("nbdtest: open %q: %w", name, err)
	}
	im, ok := o.images[name]
	if !ok {
		return nil, fmt.Errorf("nbdtest: open %q: %w", name, nbd.ErrExportNotFound)
	}
	o.open++
	o.opens++
	return &Export{im: im, o: o, readOnly: readOnly}, nil
}

// Info implements nbd.Opener. It describes an image whose Open is refused
// too, as an image locked by another writer can be described.
func (o *Opener) Info(_ context.Context, name string) (nbd.ExportInfo, error) {
	o.mu.Lock()
	im, ok := o.images[name]
	if ok {
		o.infos++
	}
	o.mu.Unlock()
	if !ok {
		return nbd.ExportInfo{}, fmt.Errorf("nbdtest: info %q: %w", name, nbd.ErrExportNotFound)
	}
	im.mu.RLock()
	defer im.mu.RUnlock()
	return nbd.ExportInfo{Size: im.size, ReadOnly: im.readOnly, Description: im.description}, nil
}

// List implements nbd.Opener; names are sorted.
func (o *Opener) List(context.Context) ([]string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	names := make([]string, 0, len(o.images))
	for n := range o.images {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

func (o *Opener) closed() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.open--
}

// OpenExports returns how many Exports are open.
func (o *Opener) OpenExports() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.open
}

// Infos returns how many times Info succeeded.
func (o *Opener) Infos() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.infos
}

// Opens returns how many times Open succeeded.
func (o *Opener) Opens() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.opens
}

// CheckAllClosed fails t unless every Export has been closed within a
// second (connections close their Export as they wind down).
func (o *Opener) CheckAllClosed(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for o.OpenExports() != 0 {
		if time.Now().After(deadline) {
			t.Errorf("nbdtest: %d exports still open", o.OpenExports())
			return
		}
		time.Sleep(time.Millisecond)
	}
}

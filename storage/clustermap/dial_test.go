package clustermap_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
	"github.com/tsumiki-storage/tsumiki/storage/mon/montest"
)

func TestDialUnreachable(t *testing.T) {
	url, err := montest.FreeURL() // nothing listens there any more
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cli, err := clustermap.Dial(context.Background(), []string{url}, nil)
	if err == nil {
		cli.Close()
		t.Fatal("Dial to a closed port succeeded")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Dial took %v to fail", took)
	}
	if !errors.Is(err, clustermap.ErrUnreachable) || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "tsumiki mon") {
		t.Fatalf("Dial = %v, want ErrUnreachable naming %s and `tsumiki mon`", err, url)
	}
	t.Log(err)
	if _, err := clustermap.Dial(context.Background(), nil, nil); !errors.Is(err, clustermap.ErrInvalid) {
		t.Fatalf("Dial(no endpoints) = %v, want ErrInvalid", err)
	}
}

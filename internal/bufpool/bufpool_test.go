package bufpool

import "testing"

func TestPool(t *testing.T) {
	var p Pool
	for _, n := range []int{1, 512, 4096, 4097, 1 << 20, 32 << 20, 32<<20 + 1} {
		b := p.Get(n)
		if len(b) != n {
			t.Fatalf("Get(%d) has length %d", n, len(b))
		}
		p.Put(b)
		if c := Class(n); c >= 0 && ClassSize(c) < n {
			t.Fatalf("class %d too small for %d", c, n)
		}
		if b2 := p.Get(n); len(b2) != n {
			t.Fatalf("Get(%d) after Put has length %d", n, len(b2))
		}
	}
	if Class(0) != -1 || Class(64<<20) != -1 {
		t.Fatal("sizes outside the classes must not be pooled")
	}
	p.Put(make([]byte, 5000)) // not a class size: ignored
	if b := p.Get(5000); cap(b) != 8192 {
		t.Fatalf("Get(5000) has cap %d, want the class size 8192", cap(b))
	}
}

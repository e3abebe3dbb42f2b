package nfsgw

import (
	"bytes"
	"math/rand"
	"reflect"
	"syscall"
	"testing"
	"testing/quick"

	nfs "github.com/willscott/go-nfs"
)

// TestAttrEncodingMatchesGoNFS: the front's attributes are byte for byte
// what go-nfs sends for the same stat (the Linux client compares them
// across replies), checked on random stats against go-nfs's own
// reflection-based encoders.
func TestAttrEncodingMatchesGoNFS(t *testing.T) {
	types := []uint32{syscall.S_IFREG, syscall.S_IFDIR, syscall.S_IFLNK, syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK}
	gen := func(vals []reflect.Value, r *rand.Rand) {
		var st syscall.Stat_t
		st.Mode = types[r.Intn(len(types))] | uint32(r.Intn(0o10000))
		st.Nlink = uint64(r.Intn(5))
		st.Uid, st.Gid = r.Uint32(), r.Uint32()
		st.Size = r.Int63() >> uint(r.Intn(63))
		st.Rdev = r.Uint64()
		st.Ino = r.Uint64()
		st.Mtim.Sec = r.Int63n(1<<34) - 1<<33 // before 1970 too
		st.Mtim.Nsec = r.Int63n(1e9)
		vals[0] = reflect.ValueOf(st)
		vals[1] = reflect.ValueOf(r.Intn(2) == 0)
	}
	f := func(st syscall.Stat_t, nilPre bool) bool {
		fi := &statInfo{st: st}
		got := &xdrWriter{}
		appendPostOp(got, fi)
		want := &bytes.Buffer{}
		_ = nfs.WritePostOpAttrs(want, nfs.ToFileAttribute(fi, ""))
		if !bytes.Equal(got.b, want.Bytes()) || len(got.b) != 4+fattr3Len {
			t.Logf("post_op_attr of %+v:\n got %x\nwant %x", st, got.b, want.Bytes())
			return false
		}
		pre := fi
		var preCache *nfs.FileCacheAttribute
		if nilPre {
			pre = nil
		} else {
			preCache = nfs.ToFileAttribute(fi, "").AsCache()
		}
		got = &xdrWriter{}
		appendWcc(got, pre, fi)
		want.Reset()
		_ = nfs.WriteWcc(want, preCache, nfs.ToFileAttribute(fi, ""))
		if !bytes.Equal(got.b, want.Bytes()) {
			t.Logf("wcc_data of %+v:\n got %x\nwant %x", st, got.b, want.Bytes())
			return false
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 2000, Values: gen}); err != nil {
		t.Fatal(err)
	}
	w := &xdrWriter{}
	appendPostOp(w, nil)
	appendWcc(w, nil, nil)
	if !bytes.Equal(w.b, make([]byte, 12)) {
		t.Fatalf("empty attributes: %x", w.b)
	}
}

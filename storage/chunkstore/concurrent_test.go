package chunkstore

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// TestConcurrent runs one writer per PG (the OSD's rule) next to readers,
// Digest and ListPGs; run with -race.
func TestConcurrent(t *testing.T) {
	s := openStore(t, testConfig(t))
	const writers, rounds = 3, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers+2)
	stop := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pg := PG{Pool: 9, Seq: uint32(w)}
			for r := range rounds {
				b := s.NewBatch()
				data := pattern(byte(r), 6000)
				if err := b.Write(pg, "o", int64(r*100), data, uint64(r)); err != nil {
					errs <- err
					return
				}
				if err := b.AppendEntries(pg, uint64(r+1), [][]byte{data[:100]}); err != nil {
					errs <- err
					return
				}
				if err := b.SetApplyState(pg, fmt.Appendf(nil, "%d", r)); err != nil {
					errs <- err
					return
				}
				if err := b.Commit(); err != nil {
					errs <- err
					return
				}
				got := make([]byte, len(data))
				if err := s.Read(pg, "o", int64(r*100), got); err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("pg %s round %d: read back %v", pg, r, err)
					return
				}
			}
		}()
	}
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.ListPGs(); err != nil {
				errs <- err
				return
			}
			for w := range writers {
				pg := PG{Pool: 9, Seq: uint32(w)}
				if _, _, _, err := s.Digest(pg); err != nil {
					errs <- err
					return
				}
				if _, err := s.LoadRaft(pg); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := s.Checkpoint(); err != nil { // LoadRaft returns durable apply states
		t.Fatal(err)
	}
	for w := range writers {
		st, err := s.LoadRaft(PG{Pool: 9, Seq: uint32(w)})
		if err != nil || st.FirstIndex != 1 || st.LastIndex != rounds || string(st.ApplyState) != fmt.Sprint(rounds-1) {
			t.Errorf("LoadRaft(9.%d) = %+v, %v", w, st, err)
		}
	}
}

package chunkstore

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Detail-level causes when a seal does not verify.
var (
	errChecksum = errors.New("checksum mismatch")
	// Badger v4 returns an empty value and no error when it cannot read a
	// value-log record (its own checksum mismatch, a pointer past a
	// truncated file): Item.yieldItemValue only logs the error. Every sealed
	// value has at least 4 bytes, so an empty one is this case.
	errUnreadable = errors.New("value unreadable (badger returned no bytes; see its error log)")
)

// seal returns a new value: CRC-32C(key || payload) followed by payload.
// Covering the key means a value stored under the wrong key (a misdirected
// write, a wrong pointer) fails verification too.
func seal(key, payload []byte) []byte {
	v := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(v, sealSum(key, payload))
	copy(v[4:], payload)
	return v
}

func sealSum(key, payload []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, payload)
}

// unseal verifies v against key and returns its payload (aliasing v).
func unseal(key, v []byte) ([]byte, error) {
	if len(v) == 0 {
		return nil, errUnreadable
	}
	if len(v) < 4 {
		return nil, errChecksum
	}
	if binary.BigEndian.Uint32(v) != sealSum(key, v[4:]) {
		return nil, errChecksum
	}
	return v[4:], nil
}

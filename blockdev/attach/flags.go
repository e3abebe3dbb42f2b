package attach

// Transmission flags the kernel is told (include/uapi/linux/nbd.h).
const (
	FlagHasFlags   = 1 << 0
	FlagReadOnly   = 1 << 1
	FlagSendFlush  = 1 << 2
	FlagSendFUA    = 1 << 3
	FlagSendTrim   = 1 << 5
	FlagSendZeroes = 1 << 6
	FlagCanMulti   = 1 << 8
)

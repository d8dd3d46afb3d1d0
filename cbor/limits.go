package cbor

// Limits bound what Decode accepts, so a hostile snapshot costs at most a
// known amount of time and memory. Every check happens before the
// allocation it protects: a declared length is compared with the limit and
// with the bytes that remain.
type Limits struct {
	// MaxBytes is the largest snapshot accepted.
	MaxBytes int
	// MaxDepth is how deeply arrays and maps may nest inside a value.
	MaxDepth int
	// MaxItems is the most elements of one array or map.
	MaxItems int
	// MaxSteps is the most step instances of one session.
	MaxSteps int
}

// Default limits: 1 MiB (the stream's default maximum message size), values
// nested 16 deep, 10,000 items in one array or map, 4,096 steps (the
// engine's default limit).
const (
	DefaultMaxBytes = 1 << 20
	DefaultMaxDepth = 16
	DefaultMaxItems = 10_000
	DefaultMaxSteps = 4096
)

// DefaultLimits are the limits Decode uses when given the zero Limits.
var DefaultLimits = Limits{MaxBytes: DefaultMaxBytes, MaxDepth: DefaultMaxDepth, MaxItems: DefaultMaxItems, MaxSteps: DefaultMaxSteps}

func (l Limits) orDefault() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxItems <= 0 {
		l.MaxItems = DefaultMaxItems
	}
	if l.MaxSteps <= 0 {
		l.MaxSteps = DefaultMaxSteps
	}
	return l
}

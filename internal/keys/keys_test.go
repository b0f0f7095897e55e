package keys

import (
	"testing"
)

// Kafka's Java client places a key at toPositive(murmur2(key)) % n; these hashes are the
// reference vectors of Kafka's UtilsTest. With n = MaxInt32 the partition is the masked
// hash itself, so the test checks the hash and the masking at once.
func TestMurmur2MatchesKafka(t *testing.T) {
	p := MustNew("")
	if p.Name() != Murmur2 {
		t.Fatalf("default partitioner %q", p.Name())
	}
	for _, c := range []struct {
		key  string
		hash int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		want := int32(uint32(c.hash)&0x7fffffff) % 0x7fffffff
		if got := p.Partition([]byte(c.key), 0x7fffffff); got != want {
			t.Errorf("%q: partition %d, want %d", c.key, got, want)
		}
		if got, want := p.Partition([]byte(c.key), 12), int32(uint32(c.hash)&0x7fffffff)%12; got != want {
			t.Errorf("%q of 12: partition %d, want %d", c.key, got, want)
		}
	}
}

func TestPartitionersStayInRange(t *testing.T) {
	for _, name := range []string{Murmur2, Sarama, CRC32} {
		p := MustNew(name)
		seen := map[int32]bool{}
		for i := range 2000 {
			k := []byte("ord_" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('0'+i/676%10)))
			a, b := p.Partition(k, 12), p.Partition(k, 12)
			if a != b || a < 0 || a >= 12 {
				t.Fatalf("%s: key %q: %d then %d", name, k, a, b)
			}
			seen[a] = true
		}
		if len(seen) != 12 {
			t.Fatalf("%s: only %d of 12 partitions reached", name, len(seen))
		}
	}
}

func TestUnknownPartitioner(t *testing.T) {
	if _, err := New("random"); err == nil {
		t.Fatal("want an error for an unknown partitioner")
	}
}

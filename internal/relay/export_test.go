package relay

// Lag is the consumer lag the relay reports for one input partition, and whether it
// reports one at all (tests only).
func (r *Relay) Lag(topic string, partition int32) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.lags[tp{topic, partition}]
	return n, ok
}

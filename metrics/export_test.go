package metrics

// Members returns the IDs of the members whose state the Collector keeps (raw values for
// rates, exported series), for tests.
func (c *Collector) Members() (raw, series []ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.prev {
		raw = append(raw, ID(id))
	}
	for id := range c.seen {
		series = append(series, ID(id))
	}
	return raw, series
}

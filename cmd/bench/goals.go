package main

import "fmt"

// goals judges the figures against the goals of issue 8. A goal not met
// is a finding: the figures are reported as measured either way.
func (b *bench) goals() {
	r := b.rep
	ran := func(section string) bool {
		for _, s := range r.Sections {
			if s.ID == section {
				return true
			}
		}
		return false
	}
	if ran("replication") {
		for _, d := range []string{"always", "periodic"} {
			r.goal("replication."+d, "replication ≤ 1.2× the JetStream floor at p50, "+d+" fsync",
				"replication."+d+".understudy_over_jetstream.p50", true, 1.2)
		}
	}
	if ran("latency") {
		r.goal("latency.off", "whole stack with replication ≤ 1.25× without it, p50", "latency.understudy_over_off.p50", true, 1.25)
		r.goal("latency.redis", "whole stack no slower than the Redis baseline at p50 (fsync every write)", "latency.understudy_over_redis.always.p50", true, 1)
		r.goal("latency.redis.periodic", "whole stack no slower than the Redis baseline at p50 (periodic fsync)", "latency.understudy_over_redis.periodic.p50", true, 1)
	}
	if ran("throughput") {
		r.goal("throughput.redis.always", "throughput ≥ the Redis baseline, fsync every write", "throughput.understudy_over_redis.always", false, 1)
		r.goal("throughput.redis.periodic", "throughput ≥ the Redis baseline, periodic fsync", "throughput.understudy_over_redis.periodic", false, 1)
		r.goal("throughput.periodic", "throughput ≥ 5,000 interactions/s with periodic fsync", "throughput.understudy-periodic", false, 5000)
		r.goal("throughput.always", "throughput with fsync on every write (reported against the same 5,000/s)", "throughput.understudy-always", false, 5000)
		if lease := b.cfg.throughputLease; len(b.longLeaseSpecs()) > 0 {
			l := ", lease " + lease.String()
			r.goal("throughput.lease.redis.always", "throughput ≥ the Redis baseline, fsync every write"+l, "throughput.lease.understudy_over_redis.always", false, 1)
			r.goal("throughput.lease.redis.periodic", "throughput ≥ the Redis baseline, periodic fsync"+l, "throughput.lease.understudy_over_redis.periodic", false, 1)
			r.goal("throughput.lease.periodic", "throughput ≥ 5,000 interactions/s with periodic fsync"+l, "throughput.understudy-periodic-lease", false, 5000)
		}
	}
	if ran("failover") {
		lease := float64(b.cfg.lease.Milliseconds())
		for _, n := range b.cfg.held {
			h := group3(float64(n), 0)
			r.goal(fmt.Sprintf("failover.kill.%d", n), "failover after kill -9 (fast path) p99 < 100 ms, "+h+" sessions held", fmt.Sprintf("failover.kill.%d.p99", n), true, 100)
			r.goal(fmt.Sprintf("failover.stop.%d", n), fmt.Sprintf("failover after SIGSTOP p99 < lease + 200 ms (%s), %s sessions held", format(lease+200, unitMillis), h),
				fmt.Sprintf("failover.stop.%d.p99", n), true, lease+200)
		}
		if len(b.cfg.held) >= 2 {
			small, large := b.cfg.held[0], b.cfg.held[len(b.cfg.held)-1]
			for _, inj := range injuries {
				for _, p := range []string{"p50", "p99"} {
					r.goal(fmt.Sprintf("failover.%s.growth.%s", inj.id, p),
						fmt.Sprintf("%s: %s-session failover %s within 1.5× the %s-session one", inj.title, group3(float64(large), 0), p, group3(float64(small), 0)),
						fmt.Sprintf("failover.%s.%d_over_%d.%s", inj.id, large, small, p), true, 1.5)
				}
			}
		}
	}
	if ran("catchup") {
		n := b.cfg.held[len(b.cfg.held)-1]
		h := group3(float64(n), 0)
		r.goal("catchup.subscriber", "catch-up of "+h+" sessions < 2 s (subscriber)", fmt.Sprintf("catchup.%d.subscriber.took", n), true, 2)
		r.goal("catchup.process", "catch-up of "+h+" sessions < 2 s (backup process, exec to ready)", fmt.Sprintf("catchup.%d.process.took", n), true, 2)
		if row := r.row(fmt.Sprintf("catchup.%d.payload", n)); row != nil && row.Unavailable == "" {
			target := 1.3*row.Median + 200
			r.goal("catchup.memory", fmt.Sprintf("memory < 1.3× snapshot + 200 B per session (%s), subscriber heap, %s sessions", format(target, unitBytes), h),
				fmt.Sprintf("catchup.%d.subscriber.heap", n), true, target)
			if len(b.cfg.held) >= 2 {
				small := b.cfg.held[0]
				r.goal("catchup.memory.process", fmt.Sprintf("the same goal against the backup process's RSS growth per session, %s → %s sessions", group3(float64(small), 0), h),
					fmt.Sprintf("catchup.process.rss_growth.%d_%d", small, n), true, target)
			}
		}
	}
}

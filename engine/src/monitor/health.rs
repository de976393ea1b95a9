//! Healthcheck rules (Docker's): probes every `interval` (`start_interval` during the
//! start period), a failure inside the start period does not count, `retries`
//! consecutive failures make the container `unhealthy`, one success `healthy`.

use std::collections::VecDeque;
use std::time::Duration;

use crate::container::config::{ContainerConfig, HealthTest};
use crate::container::spec::probe_args;
use crate::state::{Health, HealthStatus, ProbeResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPlan {
    pub args: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    pub start_interval: Duration,
}

/// The container's healthcheck over the image's; None when there is none or `NONE`.
pub fn plan(c: &ContainerConfig) -> Option<HealthPlan> {
    let hc = c.healthcheck.as_ref().or(c.image.healthcheck.as_ref())?;
    if hc.test == HealthTest::None {
        return None;
    }
    let image = c.image.healthcheck.as_ref();
    // Unset fields of the container's healthcheck fall back to the image's.
    let pick = |f: fn(&crate::container::config::Healthcheck) -> Option<Duration>, d: u64| {
        f(hc)
            .or_else(|| image.and_then(f))
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(d))
    };
    Some(HealthPlan {
        args: probe_args(&hc.test)?,
        interval: pick(|h| h.interval, 30),
        timeout: pick(|h| h.timeout, 30),
        retries: hc
            .retries
            .or_else(|| image.and_then(|h| h.retries))
            .filter(|r| *r > 0)
            .unwrap_or(3),
        start_period: hc
            .start_period
            .or_else(|| image.and_then(|h| h.start_period))
            .unwrap_or_default(),
        start_interval: pick(|h| h.start_interval, 5),
    })
}

pub fn initial() -> Health {
    Health {
        status: HealthStatus::Starting,
        failing_streak: 0,
        log: VecDeque::new(),
    }
}

/// Folds one probe result into the health state.
pub fn record(h: &mut Health, p: &HealthPlan, in_start_period: bool, r: ProbeResult) {
    if r.exit_code == 0 {
        h.status = HealthStatus::Healthy;
        h.failing_streak = 0;
    } else if !(in_start_period && h.status == HealthStatus::Starting) {
        h.failing_streak += 1;
        if h.failing_streak >= p.retries {
            h.status = HealthStatus::Unhealthy;
        }
    }
    h.log.push_back(r);
    while h.log.len() > 5 {
        h.log.pop_front();
    }
}

/// Time until the next probe.
pub fn next_delay(h: &Health, p: &HealthPlan, in_start_period: bool) -> Duration {
    if in_start_period && h.status == HealthStatus::Starting {
        p.start_interval
    } else {
        p.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::config::Healthcheck;
    use std::time::SystemTime;

    fn res(code: i32) -> ProbeResult {
        ProbeResult {
            start: SystemTime::now(),
            end: SystemTime::now(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn starting_healthy_unhealthy() {
        let c = ContainerConfig {
            healthcheck: Some(Healthcheck {
                test: HealthTest::CmdShell("true".into()),
                interval: Some(Duration::from_secs(1)),
                timeout: None,
                retries: Some(2),
                start_period: Some(Duration::from_secs(10)),
                start_interval: None,
            }),
            ..Default::default()
        };
        let p = plan(&c).unwrap();
        assert_eq!(p.args, vec!["/bin/sh", "-c", "true"]);
        let mut h = initial();
        record(&mut h, &p, true, res(1));
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 0));
        assert_eq!(next_delay(&h, &p, true), Duration::from_secs(5));
        record(&mut h, &p, true, res(0));
        assert_eq!(h.status, HealthStatus::Healthy);
        record(&mut h, &p, false, res(1));
        assert_eq!(h.status, HealthStatus::Healthy);
        record(&mut h, &p, false, res(1));
        assert_eq!(h.status, HealthStatus::Unhealthy);
        for _ in 0..10 {
            record(&mut h, &p, false, res(1));
        }
        assert_eq!(h.log.len(), 5);
    }

    #[test]
    fn none_disables_the_images_check() {
        let mut c = ContainerConfig::default();
        c.image.healthcheck = Some(Healthcheck {
            test: HealthTest::Cmd(vec!["x".into()]),
            interval: None,
            timeout: None,
            retries: None,
            start_period: None,
            start_interval: None,
        });
        assert!(plan(&c).is_some());
        c.healthcheck = Some(Healthcheck {
            test: HealthTest::None,
            interval: None,
            timeout: None,
            retries: None,
            start_period: None,
            start_interval: None,
        });
        assert!(plan(&c).is_none());
    }
}

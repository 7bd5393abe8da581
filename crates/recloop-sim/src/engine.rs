//! One simulated user: state, the choice model, a session, and the return process.

use crate::params::TOPICS;
use crate::policy::{Policy, SlateRequest};
use crate::world::{DIM, World};
use rand::Rng;
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};

/// Largest slate the engine accepts.
pub const MAX_SLATE: usize = 64;

/// The latent and observed state of one simulated user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    /// Unit id.
    pub unit: u64,
    /// Profile (real user) whose tastes this user copies.
    pub profile: u32,
    /// Current interest vector (drifts toward what is consumed).
    pub interest: [f32; DIM],
    /// Familiarity per topic (clicks-equivalent); novelty fades as it grows.
    pub familiarity: [f32; TOPICS],
    /// Latent satisfaction in [0, 1].
    pub satisfaction: f32,
    /// Baseline satisfaction it reverts to.
    pub baseline: f32,
    /// Boredom in [0, 1].
    pub boredom: f32,
    /// Time of the next visit, in days (∞ when churned).
    pub next_visit: f64,
    /// Gone for good (away longer than the churn horizon).
    pub churned: bool,
    /// Whether the user has been scheduled yet.
    pub started: bool,
    /// Items consumed (clicked) in the simulation.
    pub consumed: Vec<u32>,
    /// Arm index while in an experiment (−1: none yet).
    pub arm: i8,
    /// Day of first exposure (−1: not exposed).
    pub entered: i32,
    /// Last day with a session.
    pub last_active_day: i32,
    /// Distinct active days since exposure.
    pub active_days: u32,
    /// Active on some day ≥ entry + 7.
    pub returned_d7: bool,
    /// Active on some day ≥ entry + 30.
    pub returned_d30: bool,
    /// Sessions.
    pub sessions: u32,
    /// Items shown.
    pub impressions: u32,
    /// Clicks.
    pub clicks: u32,
    /// Minutes watched.
    pub watch_min: f32,
    /// Likes.
    pub likes: u32,
    /// Hides.
    pub hides: u32,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

pub(crate) fn std_normal(rng: &mut Pcg32) -> f32 {
    let u1: f32 = rng.random::<f32>().max(1e-7);
    let u2: f32 = rng.random::<f32>();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

impl UserState {
    /// A fresh user copying `profile`; `salt` varies the baseline satisfaction.
    pub fn fresh(world: &World, profile: usize, unit: u64, start: f64) -> UserState {
        let mut interest = [0.0f32; DIM];
        interest.copy_from_slice(world.profile(profile));
        // familiarity: the profile's favourite topics are familiar, others are novel
        let mut scores = [(0.0f32, 0usize); TOPICS];
        for (t, s) in scores.iter_mut().enumerate() {
            *s = (world.topic_affinity(profile, t), t);
        }
        scores.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut familiarity = [0.5f32; TOPICS];
        for (rank, &(_, t)) in scores.iter().enumerate() {
            familiarity[t] = match rank {
                0..4 => 12.0,
                4..8 => 4.0,
                _ => 0.5,
            };
        }
        let h = (unit.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / (1u64 << 24) as f32;
        let baseline = 0.4 + 0.2 * h;
        UserState {
            unit,
            profile: profile as u32,
            interest,
            familiarity,
            satisfaction: baseline,
            baseline,
            boredom: 0.0,
            next_visit: start,
            churned: false,
            started: false,
            consumed: Vec::new(),
            arm: -1,
            entered: -1,
            last_active_day: -1,
            active_days: 0,
            returned_d7: false,
            returned_d30: false,
            sessions: 0,
            impressions: 0,
            clicks: 0,
            watch_min: 0.0,
            likes: 0,
            hides: 0,
        }
    }
}

/// Click utilities of a slate for a user (written to `utilities`), and the probability of any click.
pub fn click_probability(
    world: &World,
    user: &UserState,
    slate: &[u32],
    utilities: &mut [f32; MAX_SLATE],
) -> f32 {
    let p = &world.params;
    let mut sum = 0.0f32;
    for (pos, &item) in slate.iter().enumerate().take(MAX_SLATE) {
        let i = item as usize;
        let aff = world.affinity(&user.interest, item);
        let novelty = (-user.familiarity[world.topic[i] as usize] / p.novelty_scale).exp();
        let v = p.click_intercept
            + p.w_affinity * aff
            + p.w_quality * (world.quality[i] - 0.5)
            + p.w_clickbait * world.clickbait[i]
            + p.w_novelty * novelty
            - p.position_decay * (1.0 + pos as f32).ln()
            - p.w_boredom * user.boredom
            + p.w_satisfaction * (user.satisfaction - 0.5);
        let e = v.min(30.0).exp();
        utilities[pos] = e;
        sum += e;
    }
    sum / (1.0 + sum)
}

/// One logged interaction, produced when the caller asks for logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Unit id.
    pub unit: u64,
    /// Arm index.
    pub arm: u8,
    /// Time in days since the start.
    pub time: f64,
    /// Session number of the user.
    pub session: u32,
    /// Slate number within the session.
    pub page: u32,
    /// Position in the slate (0-based).
    pub position: u32,
    /// Item id.
    pub item: u32,
    /// `impression`, `click`, `like` or `hide`.
    pub event: &'static str,
    /// Watch minutes (for clicks).
    pub value: f32,
}

/// Scratch buffers reused across sessions (no allocation per impression).
pub struct Scratch {
    /// Slate buffer.
    pub slate: Vec<u32>,
    /// Utilities.
    pub utilities: [f32; MAX_SLATE],
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            slate: Vec::with_capacity(MAX_SLATE),
            utilities: [0.0; MAX_SLATE],
        }
    }
}

/// Simulate one session at `time` under `policy`. Returns clicks in the session.
pub fn run_session(
    world: &World,
    user: &mut UserState,
    policy: &dyn Policy,
    time: f64,
    rng: &mut Pcg32,
    scratch: &mut Scratch,
    mut log: Option<&mut Vec<LogRecord>>,
) -> u32 {
    let p = &world.params;
    let k = p.slate_size.min(MAX_SLATE);
    let mut budget = p.budget_median_min * (p.budget_sigma * std_normal(rng)).exp();
    let mut session_clicks = 0u32;
    let session = user.sessions;
    user.sessions += 1;
    let mut cursor = 0usize;
    for page in 0..p.max_slates {
        scratch.slate.clear();
        let req = SlateRequest {
            unit: user.unit,
            profile: user.profile,
            time,
            page,
            consumed: &user.consumed,
            k,
            nonce: rng.random(),
        };
        policy.slate(world, &req, &mut cursor, &mut scratch.slate);
        scratch.slate.retain(|&i| (i as usize) < world.n_items);
        scratch.slate.truncate(k);
        if scratch.slate.is_empty() {
            break;
        }
        let n = scratch.slate.len();
        user.impressions += n as u32;
        // boredom from repetitive slates (topic concentration)
        let mut counts = [0u8; crate::params::TOPICS];
        for &i in &scratch.slate {
            let t = world.topic[i as usize] as usize;
            counts[t] += 1;
            user.familiarity[t] += p.familiarity_per_impression;
        }
        let top = *counts.iter().max().unwrap_or(&0) as f32 / n as f32;
        user.boredom = 0.6 * user.boredom + 0.4 * ((top - 0.2) / 0.8).clamp(0.0, 1.0);
        let any = click_probability(world, user, &scratch.slate, &mut scratch.utilities);
        if let Some(log) = log.as_deref_mut() {
            for (pos, &item) in scratch.slate.iter().enumerate() {
                log.push(LogRecord {
                    unit: user.unit,
                    arm: user.arm.max(0) as u8,
                    time,
                    session,
                    page,
                    position: pos as u32,
                    item,
                    event: "impression",
                    value: 0.0,
                });
            }
        }
        budget -= p.slate_cost_min + p.bad_slate_cost * (1.0 - any);
        let r: f32 = rng.random::<f32>();
        if r < any {
            // choose the clicked position proportionally to its utility
            let total: f32 = scratch.utilities[..n].iter().sum();
            let mut x = r / any * total;
            let mut pos = n - 1;
            for (j, &u) in scratch.utilities[..n].iter().enumerate() {
                if x < u {
                    pos = j;
                    break;
                }
                x -= u;
            }
            let item = scratch.slate[pos];
            let i = item as usize;
            let aff = world.affinity(&user.interest, item);
            let (q, cb) = (world.quality[i], world.clickbait[i]);
            let watch = p.watch_median_min
                * (p.watch_affinity * aff + p.watch_quality * (q - 0.5) - p.watch_clickbait * cb
                    + 0.5 * (user.satisfaction - 0.5)
                    + p.watch_sigma * std_normal(rng))
                .exp();
            let watch = watch.min(240.0);
            user.clicks += 1;
            session_clicks += 1;
            user.watch_min += watch;
            budget -= watch * (1.0 - p.quality_refund * q);
            let liked = rng.random::<f32>() < sigmoid(-1.5 + aff + 2.0 * (q - 0.5) - cb);
            let hidden = rng.random::<f32>()
                < sigmoid(-3.0 + 3.5 * cb - p.hide_affinity * aff - p.hide_quality * (q - 0.5));
            user.likes += u32::from(liked);
            user.hides += u32::from(hidden);
            user.satisfaction += p.sat_quality * (2.0 * q - 1.0) - p.sat_clickbait * cb
                + p.sat_affinity * aff.tanh()
                - if hidden { 0.02 } else { 0.0 };
            user.satisfaction = user.satisfaction.clamp(0.0, 1.0);
            user.consumed.push(item);
            user.familiarity[world.topic[i] as usize] += 1.0;
            let iv = world.item(i);
            for (u, v) in user.interest.iter_mut().zip(iv) {
                *u += p.drift * (v - *u);
            }
            if let Some(log) = log.as_deref_mut() {
                let mut rec = LogRecord {
                    unit: user.unit,
                    arm: user.arm.max(0) as u8,
                    time,
                    session,
                    page,
                    position: pos as u32,
                    item,
                    event: "click",
                    value: watch,
                };
                log.push(rec.clone());
                if liked {
                    rec.event = "like";
                    rec.value = 0.0;
                    log.push(rec.clone());
                }
                if hidden {
                    rec.event = "hide";
                    rec.value = 0.0;
                    log.push(rec);
                }
            }
        }
        if budget <= 0.0 {
            break;
        }
    }
    user.satisfaction -= p.sat_boredom * user.boredom;
    if session_clicks == 0 {
        user.satisfaction -= p.sat_empty_session;
    }
    user.satisfaction = user.satisfaction.clamp(0.0, 1.0);
    user.boredom *= 0.3;
    session_clicks
}

/// Sample the gap to the next visit (days) given satisfaction.
pub fn next_gap(world: &World, satisfaction: f32, rng: &mut Pcg32) -> f64 {
    let p = &world.params;
    let ln = p.gap_median_days.ln() - p.gap_satisfaction * (satisfaction - 0.5)
        + p.gap_sigma * std_normal(rng);
    f64::from(ln.exp())
}

/// Run one day of a user: satisfaction reversion, then every session that falls in
/// `[day, day + 1)`, each followed by the return draw (churn beyond the horizon).
#[allow(clippy::too_many_arguments)]
pub fn user_day(
    world: &World,
    user: &mut UserState,
    policy: &dyn Policy,
    day: u32,
    rng: &mut Pcg32,
    scratch: &mut Scratch,
    mut log: Option<&mut Vec<LogRecord>>,
) {
    if user.churned {
        return;
    }
    let p = &world.params;
    if !user.started {
        user.started = true;
        let first = next_gap(world, user.satisfaction, rng).min(f64::from(p.churn_days));
        user.next_visit = f64::from(day) + rng.random::<f64>() * first;
    }
    user.satisfaction += p.sat_reversion * (user.baseline - user.satisfaction);
    let end = f64::from(day) + 1.0;
    while user.next_visit < end && !user.churned {
        let time = user.next_visit.max(f64::from(day));
        if user.entered < 0 {
            user.entered = day as i32;
        }
        run_session(world, user, policy, time, rng, scratch, log.as_deref_mut());
        let d = day as i32;
        if user.last_active_day != d {
            user.last_active_day = d;
            user.active_days += 1;
            if d >= user.entered + 7 {
                user.returned_d7 = true;
            }
            if d >= user.entered + 30 {
                user.returned_d30 = true;
            }
        }
        let gap = next_gap(world, user.satisfaction, rng);
        if gap > f64::from(p.churn_days) {
            user.churned = true;
            user.next_visit = f64::INFINITY;
        } else {
            user.next_visit = time + gap.max(0.02);
        }
    }
}

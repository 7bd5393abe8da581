//! Behaviour constants of simulated users, and how they were chosen.
//!
//! Calibration anchors (see `shared/reference/datasets.md`):
//! - **CTR**: the Open Bandit sample's uniform-random logging policy has CTR ≈ 0.0038 per
//!   impression. [`crate::World`] bisects the choice intercept `click_intercept` so that a fresh user
//!   shown uniformly random slates clicks at exactly `target_random_ctr` per impression. Position
//!   decay `−position_decay·ln(1 + position)` gives position 2 about 0.71× and position 3 about
//!   0.58× the first position's attraction, in the range of the OBD position CTRs.
//! - **Return gaps**: ML-1M timestamps are dominated by a first burst of ratings; the gaps between
//!   a user's later distinct active days have a median of a few days and a heavy tail. Gaps are
//!   log-normal with median `gap_median_days` (2.5 days) at neutral satisfaction and
//!   `gap_sigma` = 1.1, which puts about 1–3 % of gaps beyond the 30-day churn horizon.
//! - Watch time is log-normal with a median of 20 minutes at neutral affinity (a TV episode).
//!
//! - Hides are driven by clickbait and irrelevance (`hide_affinity`) more than by quality
//!   (`hide_quality`): on the ML-1M world a relevant but less popular list (EASE) then hides less
//!   per click than most-popular, while clickbait-boosted lists hide about 2.5× more.
//!
//! The remaining constants set the strength of each mechanism; the sanity scenarios
//! (`tests/scenarios.rs`) check their qualitative consequences.

use serde::{Deserialize, Serialize};

/// Number of topics items are grouped into (for boredom, diversity and novelty).
pub const TOPICS: usize = 16;

/// All behaviour constants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Items per slate.
    pub slate_size: usize,
    /// Maximum slates per session.
    pub max_slates: u32,
    /// Target per-impression CTR of uniformly random slates for a fresh user (OBD: 0.0038).
    pub target_random_ctr: f64,
    /// Intercept of the click utility (set by calibration).
    pub click_intercept: f32,
    /// Weight of true affinity (standardised) in the click utility.
    pub w_affinity: f32,
    /// Weight of quality (centred, in [−0.5, 0.5]) in the click utility.
    pub w_quality: f32,
    /// Weight of the clickbait score in the click utility (bait attracts clicks).
    pub w_clickbait: f32,
    /// Position decay of attraction.
    pub position_decay: f32,
    /// Weight of boredom (penalty) in the click utility.
    pub w_boredom: f32,
    /// Weight of satisfaction (centred) in the click utility.
    pub w_satisfaction: f32,
    /// Bonus for items of unfamiliar topics (fades as the topic is consumed).
    pub w_novelty: f32,
    /// Familiarity scale (clicks) of the novelty decay.
    pub novelty_scale: f32,
    /// Familiarity gained per impression of a topic (a click adds 1).
    pub familiarity_per_impression: f32,
    /// Median watch time (minutes) at neutral affinity, quality and satisfaction.
    pub watch_median_min: f32,
    /// Log-sd of watch time.
    pub watch_sigma: f32,
    /// Weight of standardised affinity in the log watch time.
    pub watch_affinity: f32,
    /// Weight of centred quality in the log watch time.
    pub watch_quality: f32,
    /// Weight of clickbait (a penalty) in the log watch time.
    pub watch_clickbait: f32,
    /// Weight of centred quality (a reduction) in the logit of hiding a clicked item.
    pub hide_quality: f32,
    /// Weight of standardised affinity (a reduction) in the logit of hiding a clicked item.
    pub hide_affinity: f32,
    /// Median session time budget (minutes).
    pub budget_median_min: f32,
    /// Log-sd of the budget.
    pub budget_sigma: f32,
    /// Browsing cost of a slate (minutes), plus `bad_slate_cost` × (1 − slate appeal).
    pub slate_cost_min: f32,
    /// Extra drain of a slate with nothing appealing.
    pub bad_slate_cost: f32,
    /// Share of watch time refunded to the budget by a top-quality item.
    pub quality_refund: f32,
    /// Satisfaction gain per click on an item of quality 1 (loss at 0).
    pub sat_quality: f32,
    /// Satisfaction gain per click per unit of tanh(affinity) (relevant content pleases).
    pub sat_affinity: f32,
    /// Satisfaction loss per click on an item of clickbait score 1.
    pub sat_clickbait: f32,
    /// Satisfaction loss per session per unit of boredom.
    pub sat_boredom: f32,
    /// Satisfaction loss of a session without any click.
    pub sat_empty_session: f32,
    /// Daily pull of satisfaction back to the user's baseline.
    pub sat_reversion: f32,
    /// Interest drift toward a consumed item's factors.
    pub drift: f32,
    /// Median gap between visits (days) at satisfaction 0.5.
    pub gap_median_days: f32,
    /// Log-sd of the gap.
    pub gap_sigma: f32,
    /// Effect of satisfaction on the log gap (higher satisfaction, shorter gap).
    pub gap_satisfaction: f32,
    /// Days away after which a user has churned.
    pub churn_days: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            slate_size: 10,
            max_slates: 12,
            target_random_ctr: 0.0038,
            click_intercept: -6.0,
            w_affinity: 1.5,
            w_quality: 1.0,
            w_clickbait: 3.0,
            position_decay: 0.5,
            w_boredom: 0.1,
            w_satisfaction: 0.7,
            w_novelty: 0.8,
            novelty_scale: 1.5,
            familiarity_per_impression: 0.1,
            watch_median_min: 20.0,
            watch_sigma: 0.7,
            watch_affinity: 0.35,
            watch_quality: 1.0,
            watch_clickbait: 0.8,
            hide_quality: 0.5,
            hide_affinity: 1.5,
            budget_median_min: 45.0,
            budget_sigma: 0.5,
            slate_cost_min: 1.0,
            bad_slate_cost: 4.0,
            quality_refund: 0.5,
            sat_quality: 0.05,
            sat_affinity: 0.05,
            sat_clickbait: 0.10,
            sat_boredom: 0.20,
            sat_empty_session: 0.06,
            sat_reversion: 0.02,
            drift: 0.02,
            gap_median_days: 2.5,
            gap_sigma: 1.1,
            gap_satisfaction: 3.0,
            churn_days: 30.0,
        }
    }
}

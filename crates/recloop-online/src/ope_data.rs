//! Logged bandit datasets for off-policy estimates: the Open Bandit Dataset sample (fetched and
//! cached by `recloop_rec::data::obd`) turned into `recloop-stats`' logged feedback.

use recloop_stats::ope::LoggedFeedback;
use recloop_stats::{DatasetError, DatasetLoader, DatasetSpec, LoggedDataset};
use std::collections::BTreeMap;

/// Loads the Open Bandit Dataset sample (`name = "obd"`, any behaviour policy and campaign).
#[derive(Debug, Clone, Copy, Default)]
pub struct ObdLoader;

impl DatasetLoader for ObdLoader {
    fn load(&self, spec: &DatasetSpec) -> Result<LoggedDataset, DatasetError> {
        if spec.name != "obd" {
            return Err(DatasetError::Unknown {
                name: spec.name.clone(),
                expected: "obd".into(),
            });
        }
        let log = recloop_rec::data::obd::load(&spec.behavior, &spec.campaign)
            .map_err(|e| DatasetError::Load(Box::new(e)))?;
        let feedback = LoggedFeedback {
            actions: log.item_id.iter().map(|&a| a as usize).collect(),
            positions: log.position.iter().map(|&p| usize::from(p)).collect(),
            rewards: log.click.iter().map(|&c| f64::from(c)).collect(),
            pscores: log.propensity.clone(),
            n_actions: log.n_items,
            len_list: log.n_positions(),
        };
        let mut item_features = BTreeMap::new();
        item_features.insert("item_feature_0".to_string(), log.items.feature_0.clone());
        Ok(LoggedDataset {
            feedback,
            item_features,
        })
    }
}

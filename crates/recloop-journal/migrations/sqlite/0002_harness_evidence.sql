-- Harness versions carry the diff from their parent and the evidence of their admission.
ALTER TABLE v_harness_versions ADD COLUMN diff TEXT;
ALTER TABLE v_harness_versions ADD COLUMN evidence TEXT;

-- Whether an environment's flags evaluate without an SDK key (keyless flagd providers).
-- 0 for every existing and new environment: keys are required unless an admin says otherwise.
ALTER TABLE environments ADD COLUMN public_evaluation BIGINT NOT NULL DEFAULT 0;

-- Dead jobs sat at their last run time, inside the claim's range of due
-- jobs: each claim walked past all of them. They are parked at infinity now.
UPDATE jobs SET run_at = 'infinity' WHERE kind LIKE 'dead:%';

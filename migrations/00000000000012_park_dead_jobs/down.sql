-- Their last run time is not kept: nothing to restore.
SELECT 1;

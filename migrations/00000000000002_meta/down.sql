DROP TRIGGER jobs_notify ON jobs;
DROP FUNCTION wagate_notify_jobs();
DROP TABLE jobs;
DROP TABLE phone_numbers;
DROP TABLE wabas;

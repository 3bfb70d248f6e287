"""The only code that runs PostgreSQL programs or opens connections to PostgreSQL."""

"""One module (or package) per numbered notebook. Stages are leaves: no stage imports another."""

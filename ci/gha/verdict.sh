#!/usr/bin/env bash
# action.yml, last step: fail the job with pytest's status, after the cache and the
# artifact were kept. In: EXIT_CODE (cell.sh's exit-code output; empty if it never ran).
case "${EXIT_CODE:-}" in
  0) exit 0 ;;
  "") echo "::error::bpfvm: the tests did not run (an earlier step failed)"; exit 1 ;;
  *) echo "::error::bpfvm: pytest exited with status $EXIT_CODE"; exit "$EXIT_CODE" ;;
esac

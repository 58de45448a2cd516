# Shell functions shared by the libdocs scripts (curves.sh, study-3epochs.sh, bundle.sh).
#
#   lever_recipe LEVER   sets lever_arg (appended to --model-args) and lever_flags (train flags)
#                        for one of MetaEmbed's levers tried on libdocs-dev
#                        (results/libdocs/curves/README.md), so that a lever's curve run and the
#                        study's seeds train it with the same settings
#   run_finished DIR     succeeds when the training run in DIR has reached the step count its
#                        train_config.json asks for (its train_log.jsonl's last step), so that
#                        no half-trained checkpoint is evaluated or bundled by mistake
#
# none: the recipe as it is (random meta tokens); init-cls: the meta tokens start from the
# backbone's [CLS] embedding plus small noise; norm: a temperature per group (each query's
# MaxSim divided by its number of vectors in the group); fixed-slots: the slots at the same
# positions in every row, past the longest text; own-lr: the meta tokens' learning rate ten
# times the recipe's (the last --own-lr wins).
levers="none init-cls norm fixed-slots own-lr"
lever_recipe() {
  lever_arg="" lever_flags=()
  case $1 in
    none) ;;
    init-cls) lever_arg=",meta_init=cls" ;;
    norm) lever_flags=(--normalize-scores) ;;
    fixed-slots) lever_arg=",slot_positions=fixed" ;;
    own-lr) lever_flags=(--own-lr 1e-2) ;;
    *) echo "unknown LEVER=$1; use one of: $levers" >&2; return 2 ;;
  esac
}

run_finished() {
  local steps last
  steps=$(sed -n 's/^  "steps": \([0-9]*\),$/\1/p' "$1/train_config.json" 2>/dev/null)
  last=$(tail -n 1 "$1/train_log.jsonl" 2>/dev/null | sed -n 's/^{"step": \([0-9]*\),.*/\1/p')
  [ -n "$steps" ] && [ "$last" = "$steps" ]
}

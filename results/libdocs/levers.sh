# MetaEmbed's levers tried on libdocs-dev (results/libdocs/curves/README.md), sourced by
# curves.sh and study-3epochs.sh so that both train a lever with the same settings.
#
#   lever_recipe LEVER   sets lever_arg (appended to --model-args) and lever_flags (train flags)
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

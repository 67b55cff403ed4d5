package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"toolkit/shard"
)

// sharding is how a command over a collection of images runs: whole in one process,
// as one shard that writes its part, or as the merge of the parts.
type sharding struct {
	shard shard.Spec // Sharded: this process is one shard
	from  string     // where the shard came from: --shard, or the variables of FromEnv
	merge bool
	parts string // the parts' folder
}

// addShardFlags adds --shard, --parts and --merge; defaultParts, if not empty, is where
// the parts go without --parts (said in its help).
func addShardFlags(cmd *cobra.Command, defaultParts string) {
	cmd.Flags().String("shard", "", "run shard I/N of the job (its whole batches) and write its part to --parts; also from JOB_COMPLETION_INDEX/JOB_COMPLETIONS (a Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT (sbatch --array)")
	help := "the folder the shards write their parts to and --merge reads"
	if defaultParts != "" {
		help += " (default: " + defaultParts + ")"
	}
	cmd.Flags().String("parts", "", help)
	cmd.Flags().Bool("merge", false, "join the parts in --parts into what one process writes (give the shards' arguments)")
}

// shardingOf reads the flags of addShardFlags of cmd (--shard also as TOOLKIT_SHARD),
// and the shard from the environment (getenv) when neither --shard nor --merge is given. defaultParts is the parts'
// folder without --parts ("": --parts is required with a shard or --merge).
func shardingOf(cmd *cobra.Command, v *viper.Viper, getenv func(string) string, defaultParts string) (sharding, error) {
	s := sharding{merge: v.GetBool("merge"), parts: v.GetString("parts")}
	flag, name := v.GetString("shard"), "--shard"
	if !cmd.Flags().Changed("shard") {
		name = "TOOLKIT_SHARD"
	}
	switch {
	case s.merge && flag != "":
		return s, fmt.Errorf("%s %s runs one shard and --merge joins the shards' parts: give one of them", name, flag)
	case flag != "":
		spec, err := shard.Parse(flag)
		if err != nil {
			return s, fmt.Errorf("%s: %w", name, err)
		}
		s.shard, s.from = spec, name
	case !s.merge:
		spec, from, err := shard.FromEnv(getenv)
		if err != nil {
			return s, err
		}
		s.shard, s.from = spec, from
	}
	if s.parts == "" {
		s.parts = defaultParts
	}
	switch {
	case s.parts == "" && s.merge:
		return s, fmt.Errorf("--merge needs --parts DIR, the folder the shards wrote their parts to")
	case s.parts == "" && s.shard.Sharded():
		return s, fmt.Errorf("shard %s (from %s) writes its part to a folder: give --parts DIR, one that every shard and the merge see", s.shard, s.from)
	case v.GetString("parts") != "" && !s.merge && !s.shard.Sharded():
		return s, fmt.Errorf("--parts is where --shard I/N writes its part and --merge reads the parts: give one of them")
	}
	return s, nil
}

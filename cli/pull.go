package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"smolchat/model/hub"
)

func init() {
	var repo, file, revision, modelsDir string
	register(&Command{
		Name:    "pull",
		Summary: "download a GGUF model from Hugging Face into the models directory (default: SmolLM3-3B Q4_K_M)",
		Usage:   "[--hf-repo OWNER/NAME] [--hf-file FILE] [--revision REV] [--models-dir DIR]",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&repo, "hf-repo", hub.DefaultRepo, "Hugging Face repository to download from, e.g. ggml-org/SmolLM3-3B-GGUF")
			fs.StringVar(&file, "hf-file", hub.DefaultFile, "file in the repository to download")
			fs.StringVar(&revision, "revision", hub.DefaultRevision, "branch, tag or commit of the repository")
			addModelsDirFlag(fs, &modelsDir)
		},
		Run: func(env *Env, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected argument %q: name the model with --hf-repo and --hf-file", args[0])
			}
			// Ctrl-C stops the download cleanly, keeping NAME.partial for the next pull to resume.
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			path, err := hub.Download(ctx, hub.Options{
				Repo: repo, File: file, Revision: revision, ModelsDir: modelsDir,
				Progress: env.Stderr, // HF_ENDPOINT and HF_TOKEN are read by hub
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, path)
			return nil
		},
	})
}

// addModelsDirFlag declares --models-dir (env twin SMOLCHAT_MODELS_DIR), the directory pull downloads
// into and list reads.
func addModelsDirFlag(fs *flag.FlagSet, p *string) {
	def, err := hub.DefaultModelsDir()
	if err != nil {
		def = ""
	}
	fs.StringVar(p, "models-dir", def, "directory the downloaded models are kept in")
}

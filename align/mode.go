package align

// SetTraining switches the policy between training mode (LoRA dropout on)
// and evaluation mode; train.Trainer.Run calls it around held-out losses.
func (o *ORPO) SetTraining(on bool) { o.model.SetTraining(on) }

// SetTraining switches the policy between training mode (LoRA dropout on)
// and evaluation mode; train.Trainer.Run calls it around held-out losses.
func (o *DPO) SetTraining(on bool) { o.model.SetTraining(on) }

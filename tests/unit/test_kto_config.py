"""KTO's beta follows the model when none is given, as the learning rates do."""

from llmpost.stages.kto import Config, kto_beta


def test_beta_follows_the_model_unless_given():
    assert kto_beta(Config(), is_tiny=True) == 1.0  # the built-in task's short answers: 0.1 lost 4.7 points
    assert kto_beta(Config(), is_tiny=False) == 0.1  # TRL's default, for responses of hundreds of tokens
    assert kto_beta(Config(beta=0.3), is_tiny=True) == 0.3  # a given beta always wins
    assert "default: 1 for tiny, 0.1 for other models" in Config.model_fields["beta"].description

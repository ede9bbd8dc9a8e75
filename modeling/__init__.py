"""Model code that ships inside Hub repos (`trust_remote_code=True`).

Importing this package registers the AGKD classes with the transformers Auto classes, so local code can use
`AutoModelForSeq2SeqLM` / `AutoModel` directly and `save_pretrained` writes the `auto_map` and copies the
modeling files next to the weights.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from .configuration_agkd_attributor import AgkdAttributorConfig
from .configuration_agkd_student import AgkdStudentConfig
from .modeling_agkd_attributor import AgkdAttributorModel
from .modeling_agkd_student import AgkdStudentForConditionalGeneration

AgkdStudentConfig.register_for_auto_class()
AgkdStudentForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")
AgkdAttributorConfig.register_for_auto_class()
AgkdAttributorModel.register_for_auto_class("AutoModel")
AutoConfig.register(AgkdStudentConfig.model_type, AgkdStudentConfig, exist_ok=True)
AutoConfig.register(AgkdAttributorConfig.model_type, AgkdAttributorConfig, exist_ok=True)
AutoModelForSeq2SeqLM.register(AgkdStudentConfig, AgkdStudentForConditionalGeneration, exist_ok=True)
AutoModel.register(AgkdAttributorConfig, AgkdAttributorModel, exist_ok=True)

__all__ = ["AgkdAttributorConfig", "AgkdAttributorModel", "AgkdStudentConfig", "AgkdStudentForConditionalGeneration"]

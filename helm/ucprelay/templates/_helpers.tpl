{{- define "ucprelay.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ucprelay.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ucprelay.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ucprelay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ucprelay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ucprelay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ucprelay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ucprelay.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ucprelay.secretName" -}}
{{- if .Values.secret.existingSecret -}}
{{- .Values.secret.existingSecret -}}
{{- else -}}
{{- include "ucprelay.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* The replica ceiling: more replicas than input partitions would idle. */}}
{{- define "ucprelay.maxReplicas" -}}
{{- min (int .max) (int .root.Values.kafka.partitions) -}}
{{- end -}}

{{- define "ucprelay.validate" -}}
{{- if and .Values.keda.enabled .Values.autoscaling.enabled -}}
{{- fail "enable keda or autoscaling (HPA), not both" -}}
{{- end -}}
{{- if lt (int .Values.kafka.partitions) 1 -}}
{{- fail "kafka.partitions must be the input topic's partition count" -}}
{{- end -}}
{{- if and .Values.secret.create .Values.secret.existingSecret -}}
{{- fail "set secret.existingSecret or secret.create, not both" -}}
{{- end -}}
{{- end -}}

{{/* Image reference of an operand section: <repository>/<image>:<version>, with appVersion for an empty version. */}}
{{- define "gpu-operator.image" -}}
{{- $version := .section.version | default .root.Chart.AppVersion -}}
{{- printf "%s/%s:%s" .section.repository .section.image $version -}}
{{- end -}}

{{- define "gpu-operator.labels" -}}
app.kubernetes.io/name: gpu-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

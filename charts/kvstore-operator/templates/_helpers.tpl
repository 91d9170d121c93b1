{{/* Names, labels and derived settings shared by every template. */}}

{{- define "kvstore-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* release-chart, unless the release name already contains the chart name. */}}
{{- define "kvstore-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kvstore-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kvstore-operator.labels" -}}
helm.sh/chart: {{ include "kvstore-operator.chart" . }}
{{ include "kvstore-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: kvstore
{{- end }}

{{- define "kvstore-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kvstore-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kvstore-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kvstore-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kvstore-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* "true" when leader election is on: forced by leaderElection.enabled, else replicaCount > 1. */}}
{{- define "kvstore-operator.leaderElection" -}}
{{- $enabled := .Values.leaderElection.enabled }}
{{- if kindIs "invalid" $enabled }}
{{- $enabled = gt (int .Values.replicaCount) 1 }}
{{- end }}
{{- if and (not $enabled) (gt (int .Values.replicaCount) 1) }}
{{- fail "leaderElection.enabled=false with replicaCount > 1 would run several active operators" }}
{{- end }}
{{- ternary "true" "" $enabled }}
{{- end }}

{{- define "kvstore-operator.leaseName" -}}
{{- default (include "kvstore-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

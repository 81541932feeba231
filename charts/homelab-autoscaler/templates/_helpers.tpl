{{/* The base name of every object: the release name, with the chart name unless it has it. */}}
{{- define "hla.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hla.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "hla.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end -}}

{{- define "hla.grpcSecret" -}}
{{- default (printf "%s-grpc-tls" (include "hla.fullname" .)) .Values.grpc.tls.existingSecret -}}
{{- end -}}

{{- define "hla.grpcHost" -}}
{{- printf "%s-grpc.%s.svc" (include "hla.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* The issuer of every certificate: the given one, or the chart's own CA. */}}
{{- define "hla.issuerRef" -}}
{{- if .Values.grpc.tls.certManager.issuer.name -}}
kind: {{ .Values.grpc.tls.certManager.issuer.kind | default "Issuer" }}
name: {{ .Values.grpc.tls.certManager.issuer.name }}
{{- else -}}
kind: Issuer
name: {{ include "hla.fullname" . }}-ca
{{- end -}}
{{- end -}}

{{- define "hla.caClientSecret" -}}
{{- default (printf "%s-cluster-autoscaler-grpc-client" (include "hla.fullname" .)) .Values.clusterAutoscaler.clientSecret -}}
{{- end -}}

{{/* The manager's --grpc-allowed-clients: cluster-autoscaler's certificate and the extra ones. */}}
{{- define "hla.allowedClients" -}}
{{- $ids := list -}}
{{- with .Values.grpc.tls.clientCommonName -}}
{{- $ids = append $ids (printf "cn:%s" .) -}}
{{- end -}}
{{- join "," (concat $ids .Values.grpc.allowedClients) -}}
{{- end -}}

{{/* The manager's ServiceAccount, as the subject of its bindings. */}}
{{- define "hla.managerSubject" -}}
- kind: ServiceAccount
  name: {{ include "hla.fullname" . }}
  namespace: {{ .Release.Namespace }}
{{- end -}}

{{/* The manager's --namespace: the watched namespaces, comma-separated, each once. */}}
{{- define "hla.watchNamespaces" -}}
{{- join "," (uniq .Values.watchNamespaces) -}}
{{- end -}}

{{/* Checks of value combinations that cannot work. */}}
{{- define "hla.validate" -}}
{{- if hasKey .Values "watchNamespace" -}}
{{- fail "watchNamespace is gone: set watchNamespaces (a list, default [homelab-machines]), or watchAllNamespaces=true to watch every namespace (docs/install.md, \"Namespaces and permissions\")" -}}
{{- end -}}
{{- if not .Values.watchAllNamespaces -}}
{{- if not .Values.watchNamespaces -}}
{{- fail "watchNamespaces is empty: name the namespaces of your Groups and Machines, or set watchAllNamespaces=true" -}}
{{- end -}}
{{- if has .Release.Namespace .Values.watchNamespaces -}}
{{- fail (printf "watchNamespaces must not include the release namespace %s: the manager's rights in a watched namespace (get on every Secret, creating Jobs, which run as any ServiceAccount there) would reach its own gRPC keys and ServiceAccount" .Release.Namespace) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.clusterAutoscaler.enabled (not .Values.grpc.tls.certManager.enabled) (not .Values.clusterAutoscaler.clientSecret) -}}
{{- fail "clusterAutoscaler.enabled needs grpc.tls.certManager.enabled or clusterAutoscaler.clientSecret (its client certificate)" -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicas above 1 need leaderElection.enabled (otherwise every replica runs the controllers)" -}}
{{- end -}}
{{- if and .Values.grpc.tls.certManager.enabled .Values.grpc.tls.existingSecret -}}
{{- fail "set either grpc.tls.certManager.enabled or grpc.tls.existingSecret, not both" -}}
{{- end -}}
{{- if and .Values.grpc.allowAnyClient .Values.grpc.allowedClients -}}
{{- fail "set either grpc.allowAnyClient or grpc.allowedClients, not both" -}}
{{- end -}}
{{- if not (or .Values.grpc.allowAnyClient (include "hla.allowedClients" .)) -}}
{{- fail "the gRPC API needs the client certificates that may call: grpc.tls.clientCommonName or grpc.allowedClients (or grpc.allowAnyClient)" -}}
{{- end -}}
{{- if and .Values.grpc.tls.certManager.enabled (not .Values.grpc.tls.clientCommonName) -}}
{{- fail "grpc.tls.certManager.enabled needs grpc.tls.clientCommonName, the name cert-manager gives cluster-autoscaler's client certificate" -}}
{{- end -}}
{{- end -}}
